"""Per-tag memory of the last captured sample: exact repeats only, connection records, storage form."""

from __future__ import annotations

import math

import pytest

from edge.contract.messages import Sample
from edge.contract.quality import BAD_NOT_CONNECTED
from edge.lastseen import LastSeen, TagState, decode_value, encode_value, merge, summarize


def test_only_an_exact_repeat_of_the_last_sample_is_a_repeat():
    seen = LastSeen()
    assert not seen.is_repeat("T", 10, 1.5, 0)  # nothing known yet
    seen.note("T", 10, 1.5, 0)
    assert seen.is_repeat("T", 10, 1.5, 0)
    assert not seen.is_repeat("T", 11, 1.5, 0)  # other time
    assert not seen.is_repeat("T", 10, 1.6, 0)  # other value
    assert not seen.is_repeat("T", 10, 1.5, 0x40000000)  # other quality
    assert not seen.is_repeat("U", 10, 1.5, 0)  # other tag
    seen.note("T", 11, 2.0, 0)
    assert not seen.is_repeat("T", 10, 1.5, 0)  # an older sample is not the last one


@pytest.mark.parametrize("a,b,same", [(1, 1.0, False), (True, 1, False), (math.nan, math.nan, True),
                                      (None, None, True), ("x", "x", True), (math.inf, math.inf, True)])
def test_value_identity(a, b, same):
    seen = LastSeen()
    seen.note("T", 5, a, 0)
    assert seen.is_repeat("T", 5, b, 0) is same


def test_connection_record_moves_last_ts_but_keeps_the_equipment_sample():
    seen = LastSeen()
    seen.note("T", 10, 7.0, 0)
    seen.note("T", 50, None, BAD_NOT_CONNECTED)
    assert seen.get("T") == TagState(50, (10, 7.0, 0))
    assert seen.is_repeat("T", 10, 7.0, 0)  # re-reported after the reconnect
    seen.note("U", 60, None, BAD_NOT_CONNECTED)
    assert seen.get("U") == TagState(60, None)
    # a bad quality the equipment sent (not the connection record) is a sample
    seen.note("T", 70, None, 0x80000000)
    assert seen.get("T").sample == (70, None, 0x80000000)


def test_summarize_and_merge():
    got = summarize([Sample("A", 5, 1.0), Sample("A", 3, 2.0), Sample("B", 9, None, BAD_NOT_CONNECTED)])
    assert got == {"A": TagState(5, (3, 2.0, 0)), "B": TagState(9, None)}
    assert merge(TagState(20, (20, 1.0, 0)), TagState(9, None)) == TagState(20, (20, 1.0, 0))
    assert merge(None, TagState(9, None)) == TagState(9, None)


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 2**62, 1.5, -0.0, math.inf, 1e-300, "", "a'b\"c"])
def test_storage_form_round_trips(value):
    back = decode_value(*encode_value(value))
    assert type(back) is type(value) and back == value


def test_storage_form_nan():
    assert math.isnan(decode_value(*encode_value(math.nan)))
