"""Modbus register decoding against known byte patterns, and read planning."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, strategies as st

from edge.sources import registers
from edge.sources.readplan import MAX_BITS, MAX_REGISTERS, Point, plan_reads


@pytest.mark.parametrize(
    "words, encoding, order, expected",
    [
        ([0x4148, 0x0000], "float32", "big", 12.5),  # 12.5 = 0x41480000
        ([0x0000, 0x4148], "float32", "little", 12.5),
        ([0xBF80, 0x0000], "float32", "big", -1.0),
        ([0xFFFF], "int16", "big", -1),
        ([0xFFFF], "uint16", "big", 65535),
        ([0x8000], "int16", "big", -32768),
        ([0x0001, 0x0002], "uint32", "big", 0x00010002),
        ([0x0002, 0x0001], "uint32", "little", 0x00010002),
        ([0xFFFF, 0xFFFE], "int32", "big", -2),
        ([0x3FF0, 0, 0, 0], "float64", "big", 1.0),
        ([0, 0, 0, 0x3FF0], "float64", "little", 1.0),
        ([0x0000], "bool", "big", False),
        ([0x0100], "bool", "big", True),
    ],
)
def test_known_patterns(words, encoding, order, expected):
    assert registers.decode(words, encoding, order) == expected


def test_nan_pattern():
    assert math.isnan(registers.decode([0x7FC0, 0x0000], "float32"))


def test_decode_errors():
    with pytest.raises(registers.RegisterDecodeError):
        registers.decode([1], "float32")
    with pytest.raises(registers.RegisterDecodeError):
        registers.decode([70000], "uint16")
    with pytest.raises(registers.RegisterDecodeError):
        registers.decode([1], "float16")


def test_text_and_scale():
    assert registers.decode_text([0x422D, 0x3137, 0x0000, 0x4141]) == "B-17"
    assert registers.scaled(250, 0.1, -5.0) == pytest.approx(20.0)
    assert registers.scaled(7, 1.0, 0.0) == 7


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["big", "little"]))
def test_int32_round_trip(v, order):
    assert registers.decode(registers.encode(v, "int32", order), "int32", order) == v


@given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
def test_float32_round_trip(v, order):
    words = registers.encode(v, "float32", order)
    assert registers.decode(words, "float32", order) == v
    raw = struct.pack(">f", v)
    hi, lo = int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")
    assert words == ([hi, lo] if order == "big" else [lo, hi])


# --------------------------------------------------------------------------- planning


def test_plan_merges_neighbours_and_respects_gaps():
    pts = [Point("holding", 0, 2), Point("holding", 2, 1), Point("holding", 10, 2),
           Point("holding", 40, 1), Point("coil", 5), Point("coil", 6)]
    blocks = plan_reads(pts, max_gap=8)
    assert [(b.table, b.start, b.count) for b in blocks] == [
        ("holding", 0, 12), ("holding", 40, 1), ("coil", 5, 2)]
    assert blocks[0].points == (0, 1, 2)


def test_plan_splits_at_protocol_limit():
    pts = [Point("input", a, 2) for a in range(0, 300, 2)]
    blocks = plan_reads(pts, max_gap=0)
    assert all(b.count <= MAX_REGISTERS for b in blocks)
    assert sum(b.count for b in blocks) == 300


def test_plan_rejects_out_of_range():
    with pytest.raises(ValueError):
        plan_reads([Point("holding", 65535, 2)])
    with pytest.raises(ValueError):
        plan_reads([Point("eeprom", 0)])


points = st.lists(
    st.builds(
        lambda table, addr, width: Point(table, addr, 1 if table in ("coil", "discrete") else width),
        st.sampled_from(["holding", "input", "coil", "discrete"]),
        st.integers(0, 3000),
        st.sampled_from([1, 2, 4]),
    ),
    max_size=80,
)


@given(points, st.integers(0, 20))
def test_plan_properties(pts, gap):
    blocks = plan_reads(pts, max_gap=gap)
    served = sorted(i for b in blocks for i in b.points)
    assert served == list(range(len(pts)))  # every point exactly once
    for b in blocks:
        limit = MAX_BITS if b.table in ("coil", "discrete") else MAX_REGISTERS
        assert 1 <= b.count <= limit
        for i in b.points:
            p = pts[i]
            assert p.table == b.table
            assert b.start <= p.address and p.address + p.width <= b.start + b.count
    # blocks of one table do not overlap
    for t in ("holding", "input", "coil", "discrete"):
        spans = sorted((b.start, b.start + b.count) for b in blocks if b.table == t)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
