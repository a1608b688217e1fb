"""Edge configuration: the shipped example loads; every error names the setting and file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge.cli import EXIT_CONFIG, EXIT_OK, cmd_check, cmd_run
from edge.config import ConfigError, load_config, parse_config, parse_duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "examples" / "edge.toml"

BASE = {"edge": {"id": "gw-1", "site": "site-a"}}


def opcua(**over):
    src = {"name": "br01", "endpoint": "opc.tcp://127.0.0.1:4840/x/", "namespace_uri": "urn:x",
           "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"}]}
    src.update(over)
    return src


def modbus(**over):
    src = {"name": "cps01", "host": "127.0.0.1", "tags": [{"name": "CPS01.FLOW", "address": 0,
                                                           "encoding": "float32"}]}
    src.update(over)
    return src


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, source="edge.toml")
    return str(exc.value)


def test_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.edge.id == "gw-01"
    assert cfg.opcua[0].queue_size > 1
    assert cfg.opcua[0].context.batch == "s=BR01.BATCH_ID"
    assert cfg.outbox.max_age == 7 * 86400
    assert cfg.client_id == "batchwire-edge-gw-01"
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883


def test_defaults_and_dict_construction():
    cfg = parse_config({**BASE, "opcua": [opcua()], "modbus": [modbus()]})
    assert cfg.mqtt.max_samples_per_message == 1000
    assert cfg.edge.outbox_dir == Path(".batchwire/edge-gw-1")
    assert cfg.modbus[0].tags[0].resolved_datatype == "float"
    assert cfg.modbus[0].unit_id == 1


def test_missing_node_names_its_path():
    tags = [{"name": f"T{i}", "node": f"s=T{i}"} for i in range(3)] + [{"name": "T3"}]
    msg = error_of({**BASE, "opcua": [opcua(tags=tags)]})
    assert "opcua[0].tags[3].node: field required" in msg
    assert msg.startswith("edge.toml:")


@pytest.mark.parametrize(
    "data, where",
    [
        ({"edge": {"id": "gw/1", "site": "s"}}, "edge.id"),
        ({"edge": {"site": "s"}}, "edge.id: field required"),
        ({**BASE, "mqtt": {"url": "http://x"}}, "mqtt.url"),
        ({**BASE, "mqtt": {"max_samples_per_message": 0}}, "mqtt.max_samples_per_message"),
        ({**BASE, "mqtt": {"ack_timeout": "soon"}}, "mqtt.ack_timeout"),
        ({**BASE, "mqtt": {"colour": "red"}}, "mqtt.colour: unknown setting"),
        ({**BASE, "outbox": {"max_age": "-1d"}}, "outbox.max_age"),
        ({**BASE, "opcua": [opcua(queue_size=1)]}, "opcua[0].queue_size"),
        ({**BASE, "opcua": [opcua(endpoint="http://x")]}, "opcua[0].endpoint"),
        ({**BASE, "opcua": [opcua(namespace_uri=None)]}, "namespace_uri"),
        ({**BASE, "opcua": [opcua(tags=[{"name": "A", "node": "BR01"}])]}, "opcua[0].tags[0].node"),
        ({**BASE, "opcua": [opcua(context={"unit": "U", "phase": "PHASE"})]}, "opcua[0].context.phase"),
        ({**BASE, "opcua": [opcua(tags=[])]}, "opcua[0].tags"),
        ({**BASE, "modbus": [modbus(tags=[{"name": "A", "table": "coil", "address": 0,
                                           "encoding": "float32"}])]}, "modbus[0].tags[0]"),
        ({**BASE, "modbus": [modbus(tags=[{"name": "A", "address": 70000}])]}, "modbus[0].tags[0].address"),
        ({**BASE, "modbus": [modbus(context={"unit": "U", "phase": {"table": "holding"}})]},
         "modbus[0].context.phase.address: field required"),
        ({**BASE, "modbus": [modbus(reconnect_delay=0)]}, "modbus[0].reconnect_delay"),
        ({**BASE, "opcua": [opcua()], "modbus": [modbus(tags=[{"name": "BR01.TEMP", "address": 1}])]},
         "modbus[0].tags[0].name: duplicate tag name"),
    ],
)
def test_errors_name_the_setting(data, where):
    assert where in error_of(data)


def test_modbus_context_names_from_toml_keys(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text(
        '[edge]\nid = "g"\nsite = "s"\n'
        '[[modbus]]\nname = "m"\nhost = "h"\n'
        '[modbus.context]\nunit = "CPS01"\nrecipe = "R1"\n'
        'phase = { address = 5, names = { 0 = "idle", 1 = "prime" } }\n'
        '[[modbus.tags]]\nname = "F"\naddress = 0\n'
    )
    cfg = load_config(p)
    assert cfg.modbus[0].context.phase.names == {0: "idle", 1: "prime"}
    assert cfg.modbus[0].context.recipe == "R1"


def test_bad_toml_and_missing_file(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text("[edge\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_durations():
    assert parse_duration("7d") == 604800
    assert parse_duration("500ms") == 0.5
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError):
        parse_duration("0s")


def test_cli_exit_code_2_names_the_setting(tmp_path, capsys):
    p = tmp_path / "edge.toml"
    p.write_text('[edge]\nid = "a"\nsite = "b"\n[[opcua]]\nname = "x"\nendpoint = "opc.tcp://h"\n'
                 'namespace_uri = "u"\n[[opcua.tags]]\nname = "T"\n')
    for cmd in (cmd_check, cmd_run):
        assert cmd(argparse.Namespace(config=str(p))) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert "opcua[0].tags[0].node: field required" in err and str(p) in err


def test_cli_check_ok(capsys):
    assert cmd_check(argparse.Namespace(config=str(EXAMPLE))) == EXIT_OK
    assert "ok" in capsys.readouterr().out


def test_cli_registers_edge_commands():
    from edge.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["edge", "check", "-c", str(EXAMPLE)])
    assert args.func is cmd_check
    assert parser.parse_args(["edge", "run", "-c", "x.toml"]).func is cmd_run
