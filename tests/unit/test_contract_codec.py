"""Wire contract v1: round trips and strict decoding."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.contract import (
    AckMessage,
    BatchContext,
    BirthMessage,
    DataMessage,
    DecodeError,
    EventMessage,
    Sample,
    StateMessage,
    TagInfo,
    decode,
    encode,
    from_micros,
    parse,
    to_micros,
    topic,
)
from edge.contract.topics import TopicError, ingest_filter

ids = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/+#\x00"),
              min_size=1, max_size=12).filter(lambda s: not s.startswith("$"))
opt_text = st.none() | st.text(max_size=20)
values = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=30)
    | st.booleans()
    | st.none()
)
micros = st.integers(min_value=0, max_value=2**62)

contexts = st.dictionaries(
    st.text(min_size=1, max_size=4),
    st.builds(BatchContext, site=ids, unit=ids, batch=opt_text, phase=opt_text, recipe=opt_text),
    max_size=3,
)


@st.composite
def data_messages(draw):
    ctx = draw(contexts)
    refs = st.sampled_from([None, *ctx.keys()])
    samples = draw(st.lists(
        st.builds(Sample, tag=ids, ts=micros, value=values,
                  quality=st.integers(0, 2**32 - 1), ctx=refs),
        max_size=20))
    return DataMessage(edge=draw(ids), site=draw(ids), session=draw(ids),
                       seq=draw(st.integers(1, 2**53)), sent=draw(micros),
                       samples=tuple(samples), contexts=ctx, historical=draw(st.booleans()))


@given(data_messages())
def test_data_round_trip(msg):
    assert decode(encode(msg)) == msg


@given(st.builds(BirthMessage, edge=ids, site=ids, session=ids, sent=micros,
                 tags=st.lists(st.builds(
                     TagInfo, name=ids, datatype=st.sampled_from(["float", "int", "bool", "string"]),
                     unit=opt_text, description=opt_text, source=opt_text,
                     low=st.none() | st.floats(allow_nan=False, allow_infinity=False),
                     high=st.none() | st.floats(allow_nan=False, allow_infinity=False)),
                     max_size=5).map(tuple)))
def test_birth_round_trip(msg):
    assert decode(encode(msg)) == msg


@given(st.builds(AckMessage, edge=ids, session=ids, sent=micros, worker=st.none() | ids,
                 events=st.lists(ids, max_size=3).map(tuple),
                 ranges=st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 1000))
                                 .map(lambda r: (r[0], r[0] + r[1])), max_size=5).map(tuple)))
def test_ack_round_trip(msg):
    assert decode(encode(msg)) == msg


def test_state_and_event_round_trip():
    state = StateMessage(edge="gw-1", site="s", session="x", state="offline", sent=5)
    assert decode(encode(state)) == state
    event = EventMessage(edge="gw-1", site="s", id="gap-1", type="data-gap", ts=10, sent=11,
                         start=1, end=9, tags=("BR01.DO",), detail={"dropped": 42})
    assert decode(encode(event)) == event


def test_non_finite_values_survive_and_stay_typed():
    msg = DataMessage(edge="e", site="s", session="x", seq=1, sent=0, samples=(
        Sample("a", 1, math.nan), Sample("b", 2, math.inf), Sample("c", 3, -math.inf),
        Sample("d", 4, "NaN"),  # a string that looks like NaN stays a string
    ))
    out = decode(encode(msg))
    assert math.isnan(out.samples[0].value)
    assert out.samples[1].value == math.inf and out.samples[2].value == -math.inf
    assert out.samples[3].value == "NaN"


def test_microsecond_timestamps_are_exact():
    from datetime import datetime, timezone

    dt = datetime(2026, 11, 26, 22, 45, 40, 123456, tzinfo=timezone.utc)
    assert from_micros(to_micros(dt)) == dt


def _data(**over):
    body = {"v": 1, "kind": "data", "edge": "e", "site": "s", "session": "x", "seq": 1,
            "sent": 0, "contexts": {"c": {"site": "s", "unit": "BR01"}},
            "samples": [["t", 1, 1.5, 0, "c"]]}
    body.update(over)
    return orjson.dumps(body)


@pytest.mark.parametrize("payload, reason, fragment", [
    (b"\x00\xff", "not-json", "not JSON"),
    (b"[1,2]", "invalid", "JSON object"),
    (_data(v=2), "wrong-version", "version 2"),
    (_data(v=True), "wrong-version", "version True"),
    (_data(kind="bogus"), "unknown-kind", "bogus"),
    (_data(seq=0), "invalid", "data.seq"),
    (_data(seq="1"), "invalid", "data.seq: expected int, got str"),
    (_data(seq=True), "invalid", "got bool"),
    (_data(edge=""), "invalid", "data.edge: must not be empty"),
    (_data(samples=[["t", 1, 1.5, 0]]), "invalid", "data.samples[0]"),
    (_data(samples=[["", 1, 1.5, 0, None]]), "invalid", "data.samples[0][0]"),
    (_data(samples=[["t", 1.5, 1.5, 0, None]]), "invalid", "data.samples[0][1]"),
    (_data(samples=[["t", 1, [1], 0, None]]), "invalid", "data.samples[0][2]"),
    (_data(samples=[["t", 1, {"f": "nan"}, 0, None]]), "invalid", "non-finite"),
    (_data(samples=[["t", 1, 1, -1, None]]), "invalid", "data.samples[0][3]"),
    (_data(samples=[["t", 1, 1, 2**32, None]]), "invalid", "uint32"),
    (_data(samples=[["t", 1, 1, 0, "zz"]]), "invalid", "unknown context reference 'zz'"),
    (_data(contexts={"c": {"unit": "BR01"}}), "invalid", "data.contexts['c'].site: missing"),
    (_data(sent=None), "invalid", "data.sent"),
])
def test_strict_decoding_names_the_problem(payload, reason, fragment):
    with pytest.raises(DecodeError) as exc:
        decode(payload)
    assert exc.value.reason == reason
    assert fragment in str(exc.value)


def test_oversized_refused_before_parsing():
    with pytest.raises(DecodeError) as exc:
        decode(b"{" + b" " * 100 + b"}", max_bytes=50)
    assert exc.value.reason == "oversized"


def test_birth_rejects_unknown_datatype():
    payload = orjson.dumps({"v": 1, "kind": "birth", "edge": "e", "site": "s", "session": "x",
                            "sent": 0, "tags": [{"name": "t", "datatype": "complex"}]})
    with pytest.raises(DecodeError, match=r"birth.tags\[0\].datatype"):
        decode(payload)


def test_unknown_fields_are_ignored_for_forward_compatibility():
    payload = orjson.loads(_data())
    payload["future_field"] = {"anything": 1}
    assert isinstance(decode(orjson.dumps(payload)), DataMessage)


def test_topics_round_trip_and_validation():
    t = topic("data", "site-a", "gw-01", prefix="plant/x")
    assert t == "plant/x/v1/site-a/gw-01/data"
    parsed = parse(t)
    assert (parsed.prefix, parsed.site, parsed.edge, parsed.kind) == ("plant/x", "site-a", "gw-01", "data")
    assert ingest_filter("data", "batchwire", "hist") == "$share/hist/batchwire/v1/+/+/data"
    for bad in ("a/b", "a+", "#", "$sys", ""):
        with pytest.raises(TopicError):
            topic("data", bad, "gw")
    with pytest.raises(TopicError):
        parse("batchwire/v2/s/e/data")
