"""Value encoding and result shaping (no database)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
import pytest

from historian.query import batches, quarantine, recorded, tags
from historian.query.timeparse import TimeRange
from historian.query.values import encode_float, quality_fields, typed_value

T = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("x, out", [
    (1.5, 1.5), (None, None), (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (0.0, 0.0),
])
def test_encode_float(x, out):
    assert encode_float(x) == out


@pytest.mark.parametrize("datatype, value, text, out", [
    ("float", 37.2, None, 37.2),
    ("float", math.nan, None, "NaN"),
    ("int", 42.0, None, 42),
    ("int", -math.inf, None, "-Infinity"),
    ("bool", 1.0, None, True),
    ("bool", 0.0, None, False),
    ("string", None, "Inoculation", "Inoculation"),
    ("float", None, None, None),
])
def test_typed_value(datatype, value, text, out):
    got = typed_value(datatype, value, text)
    assert got == out and type(got) is type(out)


def test_quality_is_unsigned_and_classified():
    assert quality_fields(0) == {"quality": 0, "good": True}
    # 0x80000000 stored in a signed int4
    assert quality_fields(-2147483648) == {"quality": 0x80000000, "good": False}
    assert quality_fields(0x40000000) == {"quality": 0x40000000, "good": False}


def test_recorded_shape_truncates_and_encodes():
    tag = {"name": "BR01.TEMP", "datatype": "float", "unit": "degC"}
    ctx = ("site1", "BR01", "B-1", "growth", "R1")
    rows = [(T, math.nan, None, 0, *ctx), (T, 1.0, None, -2147483648, *ctx), (T, 2.0, None, 0, *ctx)]
    body = recorded.shape_recorded(tag, rows, 2, TimeRange(T, T))
    assert body["truncated"] is True
    assert [s["value"] for s in body["samples"]] == ["NaN", 1.0]
    assert body["samples"][1]["good"] is False
    assert body["samples"][0]["ts"] == "2026-11-26T12:00:00.000000Z"
    orjson.dumps(body)  # serialisable as is


def test_tag_shape_encodes_nonfinite_ranges():
    row = {"tag_id": 1, "name": "x", "datatype": "float", "unit": None, "description": None,
           "source": None, "low": -math.inf, "high": math.inf, "site": "s", "edge": "e",
           "created_at": T, "updated_at": T}
    shaped = tags.shape_tag(row)
    assert (shaped["low"], shaped["high"]) == ("-Infinity", "Infinity")
    assert "tag_id" not in shaped


def test_batches_group_phases_in_row_order():
    rows = [
        ("s", "BR02", "B-2", "R", T, T, None, None, None),
        ("s", "BR01", "B-1", "R", T, T, "inoculation", T, T),
        ("s", "BR01", "B-1", "R", T, T, "growth", T, T),
    ]
    shaped = [batches.public(b) for b in batches.shape_batches(rows)]
    assert [b["batch"] for b in shaped] == ["B-2", "B-1"]
    assert shaped[0]["phases"] == []
    assert [p["phase"] for p in shaped[1]["phases"]] == ["inoculation", "growth"]


def test_quarantine_preview_replaces_bad_bytes():
    assert quarantine.preview(b"ok\xff\xfe") == "ok\ufffd\ufffd"
    assert quarantine.preview("é".encode()[:1]) == "\ufffd"  # cut inside a character
