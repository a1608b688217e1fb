"""Interpreting a Modbus poll: values, context, and bad quality for failures."""

from __future__ import annotations

from edge.config import parse_config
from edge.contract import quality as q
from edge.sources import quality
from edge.sources.modbus_poll import PollPlan
from edge.sources.registers import encode


def make_plan():
    cfg = parse_config({
        "edge": {"id": "g", "site": "s"},
        "modbus": [{
            "name": "cps01", "host": "h",
            "context": {"unit": "CPS01", "recipe": "R1",
                        "phase": {"address": 10, "names": {0: "idle", 2: "wash"}},
                        "batch": {"address": 11, "encoding": "string", "count": 2}},
            "tags": [
                {"name": "FLOW", "address": 0, "encoding": "float32"},
                {"name": "PRES", "address": 2, "encoding": "int16", "scale": 0.1},
                {"name": "COUNT", "address": 3, "encoding": "uint32", "word_order": "little"},
                {"name": "VALVE", "table": "coil", "address": 4},
            ]}],
    })
    return PollPlan(cfg.modbus[0])


def test_plan_blocks_include_context_registers():
    plan = make_plan()
    assert [(b.table, b.start, b.count) for b in plan.blocks] == [("holding", 0, 13), ("coil", 4, 1)]


def test_interpret_values_and_context():
    plan = make_plan()
    regs = [0] * 13
    regs[0:2] = encode(2.5, "float32")
    regs[2:3] = encode(-123, "int16")
    regs[3:5] = encode(70000, "uint32", "little")
    regs[10] = 2
    regs[11:13] = [0x422D, 0x3137]
    readings, changes = plan.interpret(plan.blocks[0], regs, 0, 1000)
    values = {r.tag: r.value for r in readings}
    assert values["FLOW"] == 2.5
    assert abs(values["PRES"] - (-12.3)) < 1e-9
    assert values["COUNT"] == 70000
    assert all(r.unit == "CPS01" and r.ts == 1000 and r.quality == 0 for r in readings)
    assert {(c.field, c.value) for c in changes} == {("phase", "wash"), ("batch", "B-17")}
    bits, _ = plan.interpret(plan.blocks[1], [True, False], 0, 1000)
    assert bits[0].value is True
    assert {(c.field, c.value) for c in plan.static_context(5)} == {("recipe", "R1")}


def test_failure_gives_bad_samples_without_value():
    plan = make_plan()
    readings, changes = plan.interpret(plan.blocks[0], None, quality.timeout(), 7)
    assert {r.tag for r in readings} == {"FLOW", "PRES", "COUNT"}
    assert all(r.value is None and r.quality == q.BAD_TIMEOUT for r in readings)
    assert changes == []  # an unreadable context keeps the last known one


def test_quality_mapping():
    assert quality.modbus_exception(2) == q.BAD
    assert quality.modbus_exception(4) == q.BAD_DEVICE_FAILURE
    assert quality.modbus_exception(11) == q.BAD_TIMEOUT
    assert quality.modbus_exception(99) == q.BAD
    assert quality.not_connected() == q.BAD_NOT_CONNECTED
    assert not q.is_good(quality.communication_error())
    assert quality.opcua_status(None) == 0
    assert quality.opcua_status(0x80340000) == 0x80340000


def test_context_value_names_and_format():
    from edge.config import ContextRegister
    from edge.sources.modbus_poll import context_value

    lot = ContextRegister(table="input", address=1, encoding="uint32", format="C-{:04d}", names={0: ""})
    assert context_value(encode(17, "uint32"), lot) == "C-0017"
    assert context_value([0, 0], lot) is None  # empty name: no batch
    phase = ContextRegister(address=0, names={1: "prime"})
    assert context_value([1], phase) == "prime"
    assert context_value([9], phase) == "9"
