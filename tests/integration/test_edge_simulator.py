"""The shipped example configuration against the simulated plant: every configured tag
arrives over MQTT, with the batch context the plant is in."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.config import parse_config
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import Collector, wait_until

runner = pytest.importorskip("simulators.runner", reason="simulated plant not available")
plant_config = pytest.importorskip("simulators.plant", reason="simulated plant not available")

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "edge.toml"


async def test_example_config_against_simulated_plant(mqtt_url, topic_prefix, tmp_path):
    opc_port, mb_port = free_port(), free_port()
    plant_cfg = plant_config.default_plant(opcua_port=opc_port, modbus_port=mb_port, control_port=0)
    data = tomllib.loads(EXAMPLE.read_text())
    data["edge"]["data_dir"] = str(tmp_path / "outbox")
    data["mqtt"].update(url=mqtt_url, topic_prefix=topic_prefix, client_id=f"{topic_prefix}-edge",
                        max_batch_delay=0.2)
    for src in data["opcua"]:
        src["endpoint"] = src["endpoint"].replace(":4840/", f":{opc_port}/")
    for src in data["modbus"]:
        src["port"] = mb_port
        src["poll_interval"] = 0.2
    cfg = parse_config(data)
    wanted = {t.name for s in (*cfg.opcua, *cfg.modbus) for t in s.tags}

    collector = Collector(mqtt_url, topic_prefix)
    try:
        async with runner.PlantRunner(plant_cfg):
            async with EdgeAgent(cfg) as agent:
                def seen():
                    return {s.tag for m in collector.data() for s in m.samples if s.quality == 0}
                await wait_until(lambda: seen() >= wanted, timeout=30, what=f"every tag ({wanted - seen()})")
                stats = agent.stats()
                assert all(stats["sources"].values())
                # the simulator grants the monitored-item queue the example asks for
                assert stats["revised_queue_size"] == {s.name: s.queue_size for s in cfg.opcua}
                assert stats["overflows"] == {s.name: 0 for s in cfg.opcua}
        assert collector.errors == []
        birth = {t.name: t for t in collector.of("birth")[-1].tags}
        assert set(birth) == wanted
        assert birth["BR01.TEMP"].unit == "degC" and birth["BR01.TEMP"].high == 50.0  # read from the server
        contexts = {m.contexts[s.ctx] for m in collector.data() for s in m.samples if s.ctx}
        br01 = [c for c in contexts if c.unit == "BR01"]
        assert any(c.batch and c.phase and c.recipe for c in br01)  # the plant starts a batch at once
        assert any(c.unit == "CPS01" and c.recipe == "CPS-WASH-CONC" for c in contexts)
        assert not any(s.ctx for m in collector.data() for s in m.samples if s.tag.startswith("RM01."))
    finally:
        collector.close()
