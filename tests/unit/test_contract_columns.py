"""decode_rows: the bulk decode path for data messages gives what decode() gives, and
refuses what decode() refuses with the same reason and explanation."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.contract import DataMessage, DecodeError, Sample, StateMessage, decode, encode
from edge.contract.codec import DataRows, decode_rows
from tests.unit.test_contract_codec import data_messages


def outcome(fn, payload):
    try:
        return "ok", fn(payload)
    except DecodeError as err:
        return "error", (err.reason, str(err))
    except Exception as err:  # noqa: BLE001 - the same non-DecodeError too
        return "raised", type(err).__name__


@given(data_messages())
def test_rows_equal_decoded_samples(msg):
    out = decode_rows(encode(msg))
    assert isinstance(out, DataRows)
    assert out.to_message() == decode(encode(msg)) == msg
    assert [tuple(r) for r in out.rows] == [(s.tag, s.ts, s.value, s.quality, s.ctx) for s in msg.samples] \
        or any(isinstance(s.value, float) and math.isnan(s.value) for s in msg.samples)


def test_non_finite_markers_become_floats():
    msg = DataMessage("e", "s", "x", 1, 0, (Sample("a", 1, math.nan), Sample("b", 2, math.inf),
                                            Sample("c", 3, -math.inf), Sample("d", 4, "NaN")))
    rows = decode_rows(encode(msg)).rows
    assert math.isnan(rows[0][2]) and rows[1][2] == math.inf and rows[2][2] == -math.inf
    assert rows[3][2] == "NaN"


def test_other_kinds_decode_as_decode_does():
    state = StateMessage(edge="gw", site="s", session="x", state="online", sent=5)
    assert decode_rows(encode(state)) == decode(encode(state)) == state


bad_cells = st.sampled_from([
    None, True, 1, -1, 2**32, 1.5, "", "t", "zz", "c", [1], {"f": "NaN"}, {"f": "nan"},
    {"f": [1]}, {"g": 1}, {},
])


@st.composite
def mutated_payloads(draw):
    """A valid data message, then one sample row or header field broken."""
    body = {"v": 1, "kind": "data", "edge": "e", "site": "s", "session": "x", "seq": 1, "sent": 0,
            "contexts": {"c": {"site": "s", "unit": "BR01"}},
            "samples": [["t", i, 1.5 + i, 0, "c"] for i in range(draw(st.integers(1, 6)))]}
    where = draw(st.sampled_from(["cell", "row", "header"]))
    if where == "cell":
        i = draw(st.integers(0, len(body["samples"]) - 1))
        body["samples"][i][draw(st.integers(0, 4))] = draw(bad_cells)
    elif where == "row":
        i = draw(st.integers(0, len(body["samples"]) - 1))
        body["samples"][i] = draw(st.sampled_from([[], ["t", 1, 1, 0], ["t", 1, 1, 0, None, 9], "x", None]))
    else:
        body[draw(st.sampled_from(["edge", "site", "session", "seq", "sent", "historical", "contexts",
                                   "samples"]))] = draw(bad_cells)
    return orjson.dumps(body)


@given(mutated_payloads())
def test_same_verdict_as_decode(payload):
    a, b = outcome(decode, payload), outcome(decode_rows, payload)
    if a[0] == "ok":
        assert b[0] == "ok" and b[1].to_message() == a[1]
    else:
        assert a == b


@pytest.mark.parametrize("payload", [b"\x00", b"[1]", orjson.dumps({"v": 2, "kind": "data"}),
                                     orjson.dumps({"v": 1, "kind": "bogus"}), b"x" * 50])
def test_envelope_errors_are_the_same(payload):
    assert outcome(lambda p: decode(p, max_bytes=40), payload) == outcome(
        lambda p: decode_rows(p, max_bytes=40), payload)
