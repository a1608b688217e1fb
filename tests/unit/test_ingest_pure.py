"""Pure parts of ingest: classification, batching, acknowledgement ranges."""

from __future__ import annotations

import orjson

from edge.contract import (
    AckMessage, BirthMessage, DataMessage, EventMessage, Sample, StateMessage, TagInfo, decode, encode,
    topic,
)
from historian.ingest.acks import acks_for
from historian.ingest.batcher import Batcher
from historian.ingest.classify import classify
from historian.store.rows import ack_ranges
from historian.store.writer import DataIn, Quarantined


def data_msg(seq=1, n=3, edge="e1", site="s1", session="S"):
    return DataMessage(edge, site, session, seq, 0, tuple(Sample("T", i, 1.0) for i in range(n)))


def test_classify_data_and_birth():
    item = classify(topic("data", "s1", "e1"), encode(data_msg()), 5)
    assert isinstance(item, DataIn) and item.received == 5 and len(item.msg.samples) == 3
    birth = BirthMessage("e1", "s1", "S", 0, (TagInfo("T"),))
    assert classify(topic("birth", "s1", "e1"), encode(birth), 0) == birth


def test_classify_bad_input_becomes_quarantine():
    t = topic("data", "s1", "e1")
    cases = {
        b"\xff\xfe": "not-json",
        orjson.dumps({"v": 2, "kind": "data"}): "wrong-version",
        orjson.dumps({"v": 1, "kind": "nope"}): "unknown-kind",
        orjson.dumps({"v": 1, "kind": "data"}): "invalid",
        orjson.dumps([1, 2]): "invalid",
    }
    for payload, reason in cases.items():
        q = classify(t, payload, 0)
        assert isinstance(q, Quarantined) and q.reason == reason and q.payload == payload
    assert classify(t, b"x" * 100, 0, max_bytes=10).reason == "oversized"
    assert classify("other/topic", encode(data_msg()), 0).reason == "bad-topic"
    # right kind, wrong edge for the topic; a state message on a data topic
    assert classify(topic("data", "s1", "e2"), encode(data_msg()), 0).reason == "topic-mismatch"
    assert classify(t, encode(StateMessage("e1", "s1", "S", "online", 0)), 0).reason == "topic-mismatch"
    ack = AckMessage("e1", "S", ((1, 2),), 0)
    assert classify(topic("ack", "s1", "e1"), encode(ack), 0).reason == "unknown-kind"


def test_batcher_closes_on_samples_or_deadline():
    b = Batcher(max_samples=10, max_delay=0.1)
    assert b.deadline() is None and not b.ready(0)
    b.add(DataIn(data_msg(1, 4), 0), "h1", now=1.0)
    assert b.deadline() == 1.1 and not b.ready(1.05) and b.ready(1.1)
    b.add(DataIn(data_msg(2, 6), 0), "h2", now=1.01)
    assert b.full() and b.ready(1.02)
    taken = b.take()
    assert taken.samples == 10 and taken.handles == ["h1", "h2"] and len(taken.batch.data) == 2
    assert len(b) == 0 and b.deadline() is None


def test_batcher_sorts_kinds():
    b = Batcher()
    b.add(BirthMessage("e", "s", "S", 0, ()), 1, 0)
    b.add(Quarantined("t", "invalid", "x", b"", 0), 2, 0)
    b.add(StateMessage("e", "s", "S", "online", 0), 3, 0)
    t = b.take()
    assert len(t.batch.births) == len(t.batch.quarantine) == len(t.batch.states) == 1
    assert t.handles == [1, 2, 3]


def test_ack_ranges_and_acks_per_session():
    assert ack_ranges([5, 1, 2, 3, 7, 8, 2]) == ((1, 3), (5, 5), (7, 8))
    assert ack_ranges([]) == ()
    items = [DataIn(data_msg(s), 0) for s in (3, 1, 2)] + [DataIn(data_msg(1, session="T"), 0)]
    acks = acks_for(items, 99, "w")
    assert [(site, a.session, a.ranges, a.worker) for site, a in acks] == [
        ("s1", "S", ((1, 3),), "w"), ("s1", "T", ((1, 1),), "w")]


def test_event_ids_ride_the_ack_of_the_edges_current_session():
    ev = [EventMessage("e1", "s1", i, "data-gap", 0, 0) for i in ("g1", "g2", "g1")]
    other = EventMessage("e2", "s1", "x", "source-down", 0, 0)
    acks = acks_for([DataIn(data_msg(4), 0)], 99, "w", ev + [other], {"e1": "S"})
    got = [(site, a.edge, a.session, a.ranges, a.events) for site, a in acks]
    # e1's events join its data ack (session S); e2 has no known session: a ranges-free ack
    assert got == [("s1", "e1", "S", ((4, 4),), ("g1", "g2")), ("s1", "e2", "events", (), ("x",))]
    for _, a in acks:  # the codec accepts both (session non-empty, ranges may be empty)
        assert decode(encode(a)) == a


def test_event_ack_under_a_session_without_data_in_the_batch():
    ev = EventMessage("e1", "s1", "g", "data-gap", 0, 0)
    acks = acks_for([DataIn(data_msg(1, session="OLD"), 0)], 1, None, [ev], {"e1": "NEW"})
    assert [(a.session, a.ranges, a.events) for _, a in acks] == [("NEW", (), ("g",)), ("OLD", ((1, 1),), ())]
