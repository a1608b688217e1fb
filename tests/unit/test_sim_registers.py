"""Modbus register encoding against known byte patterns, and round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from simulators.catalog import Signal
from simulators.registers import decode, encode


def sig(encoding: str, scale: float = 1.0, datatype: str = "float", word_order: str = "big") -> Signal:
    return Signal("U", "U.X", "modbus", datatype, None, "", encoding=encoding, scale=scale,
                  word_order=word_order)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding,scale,value,registers", [
    ("float32", 1.0, 1.0, [0x3F80, 0x0000]),            # ABCD: high word first
    ("float32", 1.0, -2.5, [0xC020, 0x0000]),
    ("float32", 1.0, 123.456, [0x42F6, 0xE979]),
    ("int16", 0.01, 21.37, [2137]),
    ("int16", 0.01, -5.0, [0xFE0C]),                    # two's complement of -500
    ("uint16", 0.01, 45.5, [4550]),
    ("int32", 0.1, 12345.6, [0x0001, 0xE240]),          # 123456 = 0x0001E240
    ("int32", 0.1, -1.0, [0xFFFF, 0xFFF6]),             # -10
    ("uint32", 1.0, 70000, [0x0001, 0x1170]),
])
def test_known_patterns(encoding, scale, value, registers):
    s = sig(encoding, scale)
    assert encode(s, value) == registers
    assert decode(s, registers) == pytest.approx(value, rel=1e-6, abs=scale / 2)


def test_little_word_order_swaps_words():
    assert encode(sig("float32", word_order="little"), 1.0) == [0x0000, 0x3F80]


def test_out_of_range_clamps_and_nan_reads_as_sentinel():
    assert encode(sig("int16", 0.01), 1000.0) == [0x7FFF]
    assert encode(sig("uint16"), -3) == [0]
    assert encode(sig("int16", 0.01), math.nan) == [0x8000]
    assert encode(sig("uint32"), math.nan) == [0xFFFF, 0xFFFF]
    assert math.isnan(decode(sig("float32"), encode(sig("float32"), math.nan)))


def test_bools():
    assert encode(sig("bool", datatype="bool"), True) == [1]
    assert decode(sig("bool", datatype="bool"), [0]) is False


@given(hs.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_round_trip(x):
    s = sig("float32")
    assert decode(s, encode(s, x)) == x


@given(hs.integers(-0x80000000, 0x7FFFFFFF))
def test_int32_round_trip(n):
    s = sig("int32", datatype="int")
    assert decode(s, encode(s, n)) == n
