"""Pure conversion of samples into rows."""

from __future__ import annotations

import math
import struct

import pytest

from edge.contract import BatchContext, DataMessage, Sample
from historian.store.rows import (
    MINUTE_US, RowError, batch_and_phase_bounds, message_rows, pack_row, quality_to_int4, split_value,
    unpack_rows,
)


def test_split_value_every_kind():
    assert split_value(1.5) == (1.5, None)
    assert split_value(3) == (3.0, None) and type(split_value(3)[0]) is float
    assert split_value(True) == (1.0, None) and split_value(False) == (0.0, None)
    assert split_value("x") == (None, "x")
    assert split_value(None) == (None, None)
    assert math.isnan(split_value(math.nan)[0]) and split_value(-math.inf) == (-math.inf, None)


def test_quality_bits_survive_int4():
    for code in (0, 1, 0x7FFFFFFF, 0x80000000, 0x808D0000, 0xFFFFFFFF):
        assert quality_to_int4(code) & 0xFFFFFFFF == code
        assert -(2**31) <= quality_to_int4(code) < 2**31


def test_message_rows_counts_undeclared_skew_bounds_buckets():
    ctx = {"a": BatchContext("s", "u", "B", "p")}
    m = DataMessage("e", "s", "S", 1, 0, (
        Sample("T", 2 * MINUTE_US + 5, 1.0, 0x80000000, "a"),
        Sample("T", MINUTE_US, True, 0, "a"),
        Sample("X", 0, 1.0),
        Sample("T", 10**12, "txt", 0, None),
    ), ctx)
    mr = message_rows(m, {"T": 7}, {"a": 42}, received_us=2 * MINUTE_US, skew_limit_us=MINUTE_US * 5,
                      with_buckets=True)
    rows = unpack_rows(mr.data)
    assert mr.count == 3
    assert rows == [(7, 2 * MINUTE_US + 5, 1.0, None, -(2**31), 42), (7, MINUTE_US, 1.0, None, 0, 42),
                    (7, 10**12, None, "txt", 0, None)]
    assert mr.undeclared == {"X": 1} and mr.skewed == 1
    assert (mr.first_ts, mr.last_ts) == (MINUTE_US, 10**12)
    assert mr.context_bounds == {"a": [MINUTE_US, 2 * MINUTE_US + 5]}
    assert mr.buckets == {(7, MINUTE_US), (7, 2 * MINUTE_US)}  # text values have no rollup
    batches, phases = {}, {}
    batch_and_phase_bounds(ctx, mr.context_bounds, batches, phases)
    assert batches == {("s", "u", "B"): [MINUTE_US, 2 * MINUTE_US + 5, None]}
    assert list(phases) == [("s", "u", "B", "p")]


def test_message_rows_refuses_nul_text_and_absurd_time():
    m = DataMessage("e", "s", "S", 1, 0, (Sample("T", 0, "a\x00b"),))
    with pytest.raises(RowError) as err:
        message_rows(m, {"T": 1}, {}, 0, 1, with_buckets=False)
    assert err.value.reason == "invalid-value"
    m = DataMessage("e", "s", "S", 1, 0, (Sample("T", 10**20, 1.0),))
    with pytest.raises((RowError, OverflowError, struct.error)):
        message_rows(m, {"T": 1}, {}, 0, 1, with_buckets=False)


def test_pack_row_round_trips_every_shape():
    for row in [(1, 0, 1.5, None, 0, 3), (1, -5, None, None, -1, None), (2**31 - 1, 10**15, None, "é", 7, 9),
                (1, 1, math.inf, None, 0, None)]:
        assert unpack_rows(pack_row(*row)) == [row]


def test_fast_path_rows_equal_the_general_loop():
    """The whole-column path (all tags declared, one context) gives the general loop's rows
    and figures; its rollup buckets cover at least the general loop's."""
    import math as _m

    from edge.contract.codec import decode_rows
    from edge.contract import encode
    from historian.store import rows as rows_mod

    ctx = {"c": BatchContext("s", "u", "b", "p")}
    values = [1.5, 7, True, "txt", None, _m.nan, _m.inf, -0.0, 2.25]
    samples = tuple(Sample(f"T{i % 3}", 1_700_000_000_000_000 + i * 7_000_000, v, q, "c")
                    for i, (v, q) in enumerate(zip(values * 3, [0, 0x80000000, 5] * 9)))
    msg = DataMessage("e", "s", "x", 1, 0, samples, ctx)
    for m in (msg, decode_rows(encode(msg))):
        fast = rows_mod._message_rows_fast(m, {"T0": 1, "T1": 2, "T2": 3}, {"c": 9}, samples[0].ts, 60_000_000, True)
        # an undeclared tag sends the same samples down the general loop
        general = message_rows(DataMessage("e", "s", "x", 1, 0, samples + (Sample("U", 1, 1.0, 0, "c"),), ctx),
                               {"T0": 1, "T1": 2, "T2": 3}, {"c": 9}, samples[0].ts, 60_000_000, with_buckets=True)
        assert fast is not None
        assert fast.data == general.data and fast.count == general.count
        assert (fast.first_ts, fast.last_ts, fast.skewed) == (general.first_ts, general.last_ts, general.skewed)
        assert fast.context_bounds == general.context_bounds
        assert fast.buckets >= general.buckets
