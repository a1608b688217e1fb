"""The simulator's servers over real sockets, with real asyncua and pymodbus clients."""

from __future__ import annotations

import math
import struct

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from simulators.catalog import NAMESPACE_URI
from simulators.plant import default_plant
from simulators.registers import decode
from simulators.runner import PlantRunner
from tests.conftest import free_port


@pytest.fixture
async def plant():
    cfg = default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=0)
    async with PlantRunner(cfg) as runner:
        yield runner


async def test_opcua_variables_carry_units_ranges_context_and_sim_time(plant):
    async with Client(plant.opcua_endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        temp = client.get_node(f"ns={ns};{plant.catalog.get('BR01.TEMP').node_id}")
        dv = await temp.read_data_value()
        assert isinstance(dv.Value.Value, float) and dv.StatusCode.is_good()
        assert dv.SourceTimestamp.replace(tzinfo=None) >= plant.start.replace(tzinfo=None)
        eu = await (await temp.get_child("0:EngineeringUnits")).read_value()
        assert eu.DisplayName.Text == "degC"
        rng = await (await temp.get_child("0:EURange")).read_value()
        assert (rng.Low, rng.High) == (0.0, 50.0)
        ctx = plant.catalog.context_nodes("BR01")
        batch = await client.get_node(f"ns={ns};{ctx['batch']}").read_value()
        phase = await client.get_node(f"ns={ns};{ctx['phase']}").read_value()
        recipe = await client.get_node(f"ns={ns};{ctx['recipe']}").read_value()
        assert (batch, phase, recipe) == ("B-0001", "setup", "CHO-FB-DEMO")
        # the browse path Objects/Plant/BR01/TEMP leads to the same node
        node = await client.nodes.objects.get_child([f"{ns}:Plant", f"{ns}:BR01", f"{ns}:TEMP"])
        assert node.nodeid == temp.nodeid


async def test_opcua_setpoint_write_is_an_operator_action(plant):
    async with Client(plant.opcua_endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        sp = client.get_node(f"ns={ns};s=BR01.TEMP_SP")
        await sp.write_value(ua.DataValue(ua.Variant(37.5, ua.VariantType.Double)))
        await plant.wait_ticks(2)
        assert plant.model.units["BR01"].setpoints["TEMP_SP"] == 37.5
        assert await sp.read_value() == 37.5


async def test_modbus_devices_read_and_write(plant):
    client = AsyncModbusTcpClient(plant.modbus_host, port=plant.modbus_port, timeout=2, retries=0)
    await client.connect()
    try:
        await plant.wait_ticks(1)
        flow_sp = plant.catalog.get("CPS01.FLOW_SP")
        rr = await client.read_holding_registers(flow_sp.address, count=2, device_id=flow_sp.unit_id)
        assert decode(flow_sp, rr.registers) == pytest.approx(200.0)
        # write 150 mL/min as float32 ABCD
        hi, lo = struct.unpack(">HH", struct.pack(">f", 150.0))
        wr = await client.write_registers(flow_sp.address, [hi, lo], device_id=flow_sp.unit_id)
        assert not wr.isError()
        await plant.wait_ticks(1)
        assert plant.model.units["CPS01"].flow_sp == 150.0
        phase = plant.catalog.phase_register("CPS01")
        rr = await client.read_input_registers(phase.address, count=1, device_id=phase.unit_id)
        assert plant.catalog.phase_names("CPS01")[rr.registers[0]] == "prime"
        room = plant.catalog.get("RM01.TEMP")
        rr = await client.read_input_registers(room.address, count=1, device_id=room.unit_id)
        assert 15.0 < decode(room, rr.registers) < 30.0
        running = plant.catalog.get("CPS01.RUNNING")
        rb = await client.read_discrete_inputs(running.address, count=1, device_id=running.unit_id)
        assert rb.bits[0] is True
        # out-of-range write: exception 3
        wr = await client.write_registers(flow_sp.address, list(struct.unpack(">HH", struct.pack(">f", 1e6))),
                                          device_id=flow_sp.unit_id)
        assert wr.isError() and wr.exception_code == 3
        assert not math.isnan(plant.model.units["CPS01"].flow_sp)
        # a coil write is a command: TARE zeroes the balance's net weight
        tare, weight = plant.catalog.get("BAL01.TARE"), plant.catalog.get("BAL01.WEIGHT")
        wr = await client.write_coil(tare.address, True, device_id=tare.unit_id)
        assert not wr.isError()
        await plant.wait_ticks(1)
        rr = await client.read_input_registers(weight.address, count=2, device_id=weight.unit_id)
        assert abs(decode(weight, rr.registers)) < 0.05
        rb = await client.read_coils(tare.address, count=1, device_id=tare.unit_id)
        assert rb.bits[0] is False, "a command coil reads back idle"
    finally:
        client.close()
