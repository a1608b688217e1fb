"""Every fault the simulator offers is observable by a real client over a real socket."""

from __future__ import annotations

import asyncio
import math
import statistics
from datetime import timedelta

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from simulators.catalog import NAMESPACE_URI
from simulators.control import request
from simulators.faults import FaultError
from simulators.plant import default_plant
from simulators.registers import decode
from simulators.runner import PlantRunner
from simulators.status import BAD_SENSOR_FAILURE
from tests.conftest import free_port

DEADLINE_TICKS = 200


def fast_plant(speed: float = 1.0):
    cfg = default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=0, speed=speed)
    return cfg.model_copy(update={"publish_interval": 0.25})


@pytest.fixture
async def plant():
    async with PlantRunner(fast_plant()) as runner:
        yield runner


@pytest.fixture
async def opcua(plant):
    async with Client(plant.opcua_endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)

        def node(tag: str):
            return client.get_node(f"ns={ns};{plant.catalog.get(tag).node_id}")

        yield node


@pytest.fixture
async def modbus(plant):
    client = AsyncModbusTcpClient(plant.modbus_host, port=plant.modbus_port, timeout=1, retries=0)
    await client.connect()
    yield client
    client.close()


async def read_values(plant, node, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await plant.wait_ticks(1)
        out.append(await node.read_value())
    return out


def records(plant, fault_id: int) -> list[str]:
    return [r.event for r in plant.fault_log if r.fault_id == fault_id]


async def test_frozen_value_stops_changing_until_cleared(plant, opcua):
    node = opcua("BR01.TEMP")
    assert len(set(await read_values(plant, node, 3))) > 1, "a live noisy signal changes"
    fid = await plant.trigger_fault({"kind": "frozen", "target": "BR01.TEMP"})
    frozen = await read_values(plant, node, 4)
    assert len(set(frozen)) == 1
    await plant.clear_fault(fid)
    assert len(set(await read_values(plant, node, 3))) > 1
    assert records(plant, fid) == ["start", "end"]


async def test_spike_drift_and_noise_are_visible(plant, opcua):
    node = opcua("BR01.TEMP")
    await plant.wait_ticks(1)
    await plant.trigger_fault({"kind": "spike", "target": "BR01.TEMP", "magnitude": 100.0, "duration": 3600})
    await plant.wait_ticks(1)
    assert await node.read_value() > 100.0
    plant.model.faults.clear()
    fid = await plant.trigger_fault({"kind": "drift", "target": "BR01.PH", "magnitude": 360.0})  # 0.1 pH/s
    start_t = plant.model.t
    await plant.wait_ticks(3)
    value = await opcua("BR01.PH").read_value()
    truth = plant.model.units["BR01"].values()["PH"]
    assert value - truth == pytest.approx(0.1 * (plant.model.t - start_t), abs=0.05)
    await plant.clear_fault(fid)
    await plant.trigger_fault({"kind": "noise", "target": "BR01.AGIT_SP", "magnitude": 5.0})
    values = await read_values(plant, opcua("BR01.AGIT_SP"), 5)
    assert statistics.pstdev(values) > 0.5, "a constant setpoint with added noise varies"


async def test_bad_quality_and_sensor_failure_status_codes(plant, opcua):
    await plant.trigger_fault({"kind": "bad_quality", "target": "BR01.DO", "status": "BadCommunicationError"})
    await plant.trigger_fault({"kind": "sensor_failure", "target": "BR01.PH"})
    await plant.wait_ticks(1)
    dv = await opcua("BR01.DO").read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == ua.StatusCodes.BadCommunicationError
    dv = await opcua("BR01.PH").read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == BAD_SENSOR_FAILURE == ua.StatusCodes.BadSensorFailure


async def test_sensor_failure_on_modbus_reads_nan_or_sentinel(plant, modbus):
    await plant.trigger_fault({"kind": "sensor_failure", "target": "BAL01.WEIGHT"})
    await plant.trigger_fault({"kind": "sensor_failure", "target": "RM01.TEMP"})
    await plant.wait_ticks(1)
    w = plant.catalog.get("BAL01.WEIGHT")
    rr = await modbus.read_input_registers(w.address, count=2, device_id=w.unit_id)
    assert math.isnan(decode(w, rr.registers))
    t = plant.catalog.get("RM01.TEMP")
    rr = await modbus.read_input_registers(t.address, count=1, device_id=t.unit_id)
    assert rr.registers == [0x8000]


async def test_modbus_exception_and_timeout(plant, modbus):
    sig = plant.catalog.get("RM01.TEMP")
    fid = await plant.trigger_fault({"kind": "modbus_exception", "target": "RM01", "magnitude": 6})
    rr = await modbus.read_input_registers(sig.address, count=1, device_id=sig.unit_id)
    assert rr.isError() and rr.exception_code == 6
    other = plant.catalog.get("DP01.DP")
    rr = await modbus.read_input_registers(other.address, count=1, device_id=other.unit_id)
    assert not rr.isError(), "other devices behind the gateway still answer"
    await plant.clear_fault(fid)
    await plant.trigger_fault({"kind": "modbus_timeout", "target": "RM01"})
    with pytest.raises(ModbusException):
        await modbus.read_input_registers(sig.address, count=1, device_id=sig.unit_id)


async def test_unknown_unit_id_gets_gateway_exception(plant, modbus):
    rr = await modbus.read_input_registers(0, count=1, device_id=99)
    assert rr.isError() and rr.exception_code == 0x0B


async def test_clock_skew_shifts_source_timestamps(plant, opcua):
    await plant.trigger_fault({"kind": "clock_skew", "target": "BR01", "magnitude": 3600})
    await plant.wait_ticks(1)
    dv = await opcua("BR01.TEMP").read_data_value()
    skew = dv.SourceTimestamp.replace(tzinfo=None) - plant.sim_time.replace(tzinfo=None)
    assert timedelta(minutes=59) < skew <= timedelta(hours=1)
    with pytest.raises(FaultError):
        await plant.trigger_fault({"kind": "clock_skew", "target": "RM01", "magnitude": 10})


async def test_contamination_collapses_do_and_shifts_ph():
    async with PlantRunner(fast_plant(speed=20.0)) as plant, Client(plant.opcua_endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        do, ph = client.get_node(f"ns={ns};s=BR01.DO"), client.get_node(f"ns={ns};s=BR01.PH")
        await plant.wait_sim(150.0)   # inoculated
        ph0 = await ph.read_value()
        fid = await plant.trigger_fault({"kind": "contamination", "target": "BR01", "magnitude": 5.0})
        for _ in range(DEADLINE_TICKS):
            await plant.wait_ticks(1)
            if await do.read_value() < 5.0:
                break
        assert await do.read_value() < 5.0
        for _ in range(DEADLINE_TICKS):
            await plant.wait_ticks(1)
            if await ph.read_value() < ph0 - 0.2:
                break
        assert await ph.read_value() < ph0 - 0.2
        assert records(plant, fid) == ["start"]


async def test_dropped_connections_are_seen_by_clients(plant):
    client = Client(plant.opcua_endpoint, timeout=2)
    await client.connect()
    mb = AsyncModbusTcpClient(plant.modbus_host, port=plant.modbus_port, timeout=1, retries=0)
    await mb.connect()
    try:
        fid = await plant.trigger_fault({"kind": "drop_connections"})
        assert records(plant, fid) == ["start", "end"]
        assert "connection(s) dropped" in plant.fault_log[-1].detail
        with pytest.raises((ConnectionError, asyncio.TimeoutError, ua.UaError, OSError)):
            for _ in range(5):
                await client.nodes.server_state.read_value()
                await asyncio.sleep(0.05)
        for _ in range(50):
            if not mb.connected:
                break
            await asyncio.sleep(0.05)
        assert not mb.connected
    finally:
        mb.close()
        try:
            await client.disconnect()
        except Exception:  # noqa: BLE001 - the connection is already gone
            pass


@pytest.mark.slow
async def test_opcua_restart_with_renumbered_node_ids(plant):
    old_id = plant.catalog.get("BR01.TEMP").node_id
    fid = await plant.trigger_fault({"kind": "opcua_restart", "renumber": True, "downtime": 0.5})
    for _ in range(100):
        if "end" in records(plant, fid):
            break
        await plant.wait_ticks(1)
    assert records(plant, fid) == ["start", "end"]
    new_id = plant.catalog.get("BR01.TEMP").node_id
    assert new_id != old_id
    async with Client(plant.opcua_endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        assert isinstance(await client.get_node(f"ns={ns};{new_id}").read_value(), float)
        with pytest.raises(ua.UaStatusCodeError):
            await client.get_node(f"ns={ns};{old_id}").read_value()
        # browse names are unchanged, so a browsing client finds the variable again
        node = await client.nodes.objects.get_child([f"{ns}:Plant", f"{ns}:BR01", f"{ns}:TEMP"])
        assert node.nodeid.Identifier == new_id[2:]


async def test_faults_over_the_control_port_and_log_with_sim_time(plant):
    answer = await request("127.0.0.1", plant.control_port,
                           {"op": "fault", "spec": {"kind": "frozen", "target": "CPS01.FLOW"}})
    assert answer["ok"] is True
    log = await request("127.0.0.1", plant.control_port, {"op": "log"})
    rec = log["records"][-1]
    assert (rec["kind"], rec["target"], rec["event"]) == ("frozen", "CPS01.FLOW", "start")
    assert rec["sim_time"] == plant.fault_log[-1].sim_time.isoformat()
    bad = await request("127.0.0.1", plant.control_port,
                        {"op": "fault", "spec": {"kind": "frozen", "target": "NOPE.X"}})
    assert bad["ok"] is False and "NOPE.X" in bad["error"]
    cleared = await request("127.0.0.1", plant.control_port, {"op": "clear", "fault_id": answer["fault_id"]})
    assert cleared["ok"] is True
