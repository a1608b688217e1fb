"""The Modbus source against a real Modbus TCP server (a small one written for the tests),
and the agent publishing Modbus data with its batch context over the machine's Mosquitto."""

from __future__ import annotations

import asyncio

import pytest

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.contract import quality as q
from edge.reading import ContextChange, Reading
from edge.sources.modbus import ModbusSource
from edge.sources.registers import encode
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import Collector, ModbusDevice, wait_until


class ListSink:
    def __init__(self):
        self.readings: list[Reading] = []
        self.changes: list[ContextChange] = []

    def reading(self, r):
        self.readings.append(r)

    def context(self, c):
        self.changes.append(c)

    def metadata(self, tags):
        pass

    def last(self, tag):
        return [r for r in self.readings if r.tag == tag][-1]


def modbus_settings(port, **over):
    src = {
        "name": "cps01", "host": "127.0.0.1", "port": port, "unit_id": 1,
        "poll_interval": 0.05, "timeout": 0.5, "reconnect_delay": 0.1, "reconnect_delay_max": 0.2,
        "context": {"unit": "CPS01", "recipe": "CAR-T-v3",
                    "phase": {"table": "holding", "address": 100, "names": {0: "idle", 1: "prime", 2: "wash"}},
                    "batch": {"table": "holding", "address": 101, "encoding": "string", "count": 2}},
        "tags": [
            {"name": "CPS01.FLOW", "table": "input", "address": 0, "encoding": "float32", "unit": "mL/min"},
            {"name": "CPS01.PRES", "table": "input", "address": 2, "encoding": "int16", "scale": 0.01},
            {"name": "CPS01.VALVE", "table": "coil", "address": 0},
            {"name": "CPS01.GHOST", "table": "holding", "address": 500},
        ],
        **over,
    }
    return src


@pytest.fixture
async def device():
    d = ModbusDevice(free_port())
    d.input.update({0: 0, 1: 0, 2: 0})
    d.input[0], d.input[1] = encode(12.5, "float32")
    d.input[2] = encode(-150, "int16")[0]
    d.coils[0] = True
    d.holding.update({100: 1, 101: 0x432D, 102: 0x3700})  # phase 1, batch "C-7"
    await d.start()
    yield d
    await d.stop()


async def test_modbus_values_context_and_failures(device):
    cfg = parse_config({"edge": {"id": "g", "site": "s"}, "modbus": [modbus_settings(device.port)]})
    source = ModbusSource(cfg.modbus[0])
    sink = ListSink()
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_until(lambda: any(r.tag == "CPS01.FLOW" and r.quality == 0 for r in sink.readings),
                         what="first poll")
        assert sink.last("CPS01.FLOW").value == 12.5
        assert sink.last("CPS01.PRES").value == pytest.approx(-1.5)
        assert sink.last("CPS01.VALVE").value is True
        assert all(r.unit == "CPS01" for r in sink.readings)
        ghost = sink.last("CPS01.GHOST")  # the device has no register 500: exception 2
        assert ghost.value is None and ghost.quality == q.BAD
        ctx = {(c.field, c.value) for c in sink.changes}
        assert {("recipe", "CAR-T-v3"), ("phase", "prime"), ("batch", "C-7")} <= ctx

        device.holding[100] = 2
        await wait_until(lambda: ("phase", "wash") in {(c.field, c.value) for c in sink.changes},
                         what="phase change")

        # the device stops answering: samples without value and a bad quality, not silence
        device.silent = True
        n = len(sink.readings)
        await wait_until(lambda: any(r.tag == "CPS01.FLOW" and r.quality == q.BAD_TIMEOUT
                                     for r in sink.readings[n:]), what="timeout samples")
        bad = [r for r in sink.readings[n:] if r.quality == q.BAD_TIMEOUT]
        assert all(r.value is None for r in bad)

        # ... and then it is gone: not connected; back again: good values
        device.silent = False
        await device.stop()
        n = len(sink.readings)
        await wait_until(lambda: any(r.quality == q.BAD_NOT_CONNECTED for r in sink.readings[n:]),
                         what="not-connected samples")
        await device.start()
        n = len(sink.readings)
        await wait_until(lambda: any(r.tag == "CPS01.FLOW" and r.quality == 0 for r in sink.readings[n:]),
                         what="reconnect")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_agent_publishes_modbus_data_with_context(device, mqtt_url, topic_prefix, tmp_path):
    collector = Collector(mqtt_url, topic_prefix)
    try:
        cfg = parse_config({
            "edge": {"id": "gw-mb", "site": "site-b", "data_dir": str(tmp_path / "outbox")},
            "mqtt": {"url": mqtt_url, "topic_prefix": topic_prefix, "client_id": f"{topic_prefix}-edge",
                     "max_batch_delay": 0.1},
            "modbus": [modbus_settings(device.port, poll_interval=0.1)],
        })
        async with EdgeAgent(cfg) as agent:
            await wait_until(lambda: len(collector.samples("CPS01.FLOW")) >= 3, what="Modbus data")
            assert agent.stats()["sources"] == {"cps01": True}
        births = collector.of("birth")
        info = {t.name: t for t in births[-1].tags}
        assert info["CPS01.FLOW"].unit == "mL/min" and info["CPS01.FLOW"].datatype == "float"
        assert info["CPS01.VALVE"].datatype == "bool"
        assert info["CPS01.FLOW"].source == f"modbus:127.0.0.1:{device.port}/1/input/0"
        s, m = collector.samples("CPS01.FLOW")[-1]
        assert s.value == 12.5 and s.quality == 0
        c = m.contexts[s.ctx]
        assert (c.site, c.unit, c.batch, c.phase, c.recipe) == ("site-b", "CPS01", "C-7", "prime", "CAR-T-v3")
        assert collector.errors == []
    finally:
        collector.close()
