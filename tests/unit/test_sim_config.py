"""Plant files: the shipped examples load; errors name the offending setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.duration import parse_duration
from simulators.faults import FaultSpec
from simulators.plant import PlantConfig, PlantConfigError, default_plant

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_example_plant_has_the_promised_units():
    cfg = PlantConfig.load(EXAMPLES / "plant.toml")
    assert len(cfg.bioreactors) >= 3 and len(cfg.cps) == 1 and len(cfg.sensors) >= 10
    assert cfg.speed >= 1000
    assert cfg.faults


def test_demo_plant_cycles_in_about_ten_minutes():
    cfg = PlantConfig.load(EXAMPLES / "demo-plant.toml")
    assert len(cfg.bioreactors) == 1 and cfg.speed == 1.0
    assert 300 <= cfg.recipe(cfg.bioreactors[0].recipe).duration_s <= 900


def test_default_plant_ports_are_settable():
    cfg = default_plant(opcua_port=14840, modbus_port=15020, control_port=0)
    assert (cfg.servers.opcua_port, cfg.servers.modbus_port, cfg.servers.control_port) == (14840, 15020, 0)
    assert [b.name for b in cfg.bioreactors] == ["BR01"] and cfg.cps and cfg.sensors


@pytest.mark.parametrize("text,fragment", [
    ("speed = -3", "speed"),
    ("[servers]\nopcua_port = 70000", "servers.opcua_port"),
    ('[[bioreactor]]\nname = "BR01"\nrecipe = "nope"', "recipe"),
    ('[[bioreactor]]\nname = "reactor"\nrecipe = "x"', "bioreactors[0].name"),
    ('[[sensor]]\nname = "RM01"\nkind = "barometer"\nunit_id = 3', "sensors[0].kind"),
    ('[[fault]]\nkind = "frozen"', "faults[0]"),
    ('[[fault]]\nkind = "spike"\ntarget = "BR01.TEMP"', "magnitude"),
    ('[[recipe]]\nname = "R"\nphases = [{name = "harvest", duration = "1h"}, {name = "setup", duration = 5}]',
     "recipes[0].phases"),
    ('[[recipe]]\nname = "R"\nphases = [{name = "setup", duration = "soon"}, {name = "inoculation", duration = 5}]',
     "recipes[0].phases[0].duration"),
    ("colour = 'blue'", "colour"),
    ("this is not toml", "not valid TOML"),
])
def test_errors_name_the_setting(tmp_path, text, fragment):
    path = tmp_path / "plant.toml"
    path.write_text(text)
    with pytest.raises(PlantConfigError) as err:
        PlantConfig.load(path)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(PlantConfigError, match="cannot read"):
        PlantConfig.load(tmp_path / "absent.toml")


@pytest.mark.parametrize("text,seconds", [(90, 90.0), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0),
                                          ("14d", 14 * 86400.0), ("1.5min", 90.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_fault_spec_validation():
    with pytest.raises(ValueError, match="status"):
        FaultSpec(kind="bad_quality", target="BR01.DO", status="Sorta")
    assert FaultSpec(kind="drop_connections").target == ""


def test_fault_targets_are_checked_against_the_plant():
    from datetime import datetime, timezone

    from simulators.faults import FaultError
    from simulators.plantmodel import PlantModel

    m = PlantModel(default_plant(), datetime(2026, 1, 1, tzinfo=timezone.utc))
    bad = [
        FaultSpec(kind="frozen", target="BR01.NOPE"),
        FaultSpec(kind="spike", target="BR01.PHASE", magnitude=1.0),        # not numeric
        FaultSpec(kind="modbus_timeout", target="BR01"),                    # not a Modbus unit
        FaultSpec(kind="modbus_exception", target="RM01", magnitude=9),      # no such exception code
        FaultSpec(kind="contamination", target="RM01"),
        FaultSpec(kind="clock_skew", target="CPS01", magnitude=5),
    ]
    for spec in bad:
        with pytest.raises(FaultError):
            m.start_fault(spec)
    assert m.fault_log == []


def test_scheduled_faults_must_fit_the_plant():
    from datetime import datetime, timezone

    from simulators.plantmodel import PlantModel

    cfg = default_plant().model_copy(update={"faults": [FaultSpec(kind="frozen", target="BR07.TEMP", at=60)]})
    with pytest.raises(PlantConfigError, match=r"faults\[0\].*BR07.TEMP"):
        PlantModel(cfg, datetime(2026, 1, 1, tzinfo=timezone.utc))
