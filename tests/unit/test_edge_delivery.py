"""Delivery state: live/backlog interleaving, acknowledgements, timeouts, disconnects."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, strategies as st

from edge.contract.codec import decode, encode
from edge.contract.messages import BatchContext, DataMessage, Sample
from edge.delivery import Delivery, as_historical


def drain(d: Delivery, now: float = 0.0):
    out = []
    while (item := d.next()) is not None:
        d.mark_sent(item.seq, now)
        out.append(item)
    return out


def test_live_and_backlog_alternate_oldest_backlog_first():
    d = Delivery(ack_timeout=30)
    d.restore([5, 3, 4])
    d.on_connect()
    for s in (10, 11, 12, 13):
        d.committed(s, b"p%d" % s)
    items = drain(d)
    assert [(i.seq, i.historical) for i in items] == [
        (10, False), (3, True), (11, False), (4, True), (12, False), (5, True), (13, False)]
    assert items[0].payload == b"p10" and items[1].payload is None


def test_disconnected_commits_go_to_backlog():
    d = Delivery(ack_timeout=30)
    d.committed(1, b"x")
    assert d.next() is None and d.backlog == 1
    d.on_connect()
    assert d.next().historical


def test_ack_removes_and_timeout_resends():
    d = Delivery(ack_timeout=10)
    d.on_connect()
    for s in range(1, 6):
        d.committed(s, b"")
    drain(d, now=100.0)
    assert d.in_flight == 5
    assert d.acknowledged([(1, 2), (4, 4)]) == [1, 2, 4]
    assert d.acknowledged([(1, 2)]) == []  # a repeated ack is harmless
    assert d.next_expiry() == 110.0
    assert d.expire(109.0) == 0
    assert d.expire(110.0) == 2
    again = drain(d, now=111.0)
    assert [(i.seq, i.historical) for i in again] == [(3, True), (5, True)]
    assert d.acknowledged([(1, 10**12)]) == [3, 5]  # a wide range is cheap
    assert d.unacknowledged == 0


def test_disconnect_requeues_unconfirmed_and_live():
    d = Delivery(ack_timeout=10)
    d.on_connect()
    for s in (1, 2, 3):
        d.committed(s, b"")
    a, b = d.next(), d.next()
    d.mark_sent(a.seq, 0)
    d.mark_sent(b.seq, 0)
    d.puback(a.seq)  # broker has 1; 2 was never confirmed; 3 never sent
    d.on_disconnect()
    assert d.in_flight == 1 and d.backlog == 2
    d.on_connect()
    assert [i.seq for i in drain(d)] == [2, 3]


def test_dropped_messages_are_forgotten():
    d = Delivery(ack_timeout=10)
    d.restore(range(1, 100))
    d.dropped(range(1, 90))
    d.on_connect()
    assert d.peek_backlog(3) == [90, 91, 92]
    assert [i.seq for i in drain(d)] == list(range(90, 100))


@given(st.lists(st.sampled_from(["commit", "send", "ack", "expire", "disconnect", "connect", "puback"]),
                max_size=200))
def test_every_message_is_owed_until_acknowledged(ops):
    """Invariant: a committed message stays owed (live, backlog or sent) until acknowledged."""
    d = Delivery(ack_timeout=1)
    owed: set[int] = set()
    seq = 0
    now = 0.0
    for op in ops:
        now += 0.4
        if op == "commit":
            seq += 1
            d.committed(seq, b"")
            owed.add(seq)
        elif op == "send":
            item = d.next()
            if item is not None:
                d.mark_sent(item.seq, now)
        elif op == "puback" and owed:
            d.puback(min(owed))
        elif op == "ack" and owed:
            s = min(owed)
            d.acknowledged([(s, s)])
            owed.discard(s)
        elif op == "expire":
            d.expire(now)
        elif op == "disconnect":
            d.on_disconnect()
        elif op == "connect":
            d.on_connect()
        assert d.unacknowledged == len(owed)


def test_as_historical_keeps_identity():
    msg = DataMessage(edge="e", site="s", session="S1", seq=42, sent=1,
                      samples=(Sample('x,"historical":false,y', 5, 1.5, 0, "c0"),),
                      contexts={"c0": BatchContext("s", "U", "B-1")})
    raw = encode(msg)
    again = decode(as_historical(raw))
    assert again == replace(msg, historical=True)


def test_held_messages_wait_for_release_then_go_as_backlog():
    d = Delivery(ack_timeout=30)
    d.on_connect()
    for s in (1, 2, 3):
        d.committed(s, b"p%d" % s)
    first = d.next()
    d.hold(first.seq)  # carries a tag no birth declared yet
    assert d.held == 1 and d.unacknowledged == 3
    assert [i.seq for i in drain(d)] == [2, 3]
    assert not d.has_work()
    d.puback(2)
    d.puback(3)
    d.on_disconnect()
    d.on_connect()
    assert d.held == 1 and not d.has_work()  # a reconnect alone does not release it
    assert d.release_held() == 1 and d.held == 0
    item = d.next()
    assert (item.seq, item.payload, item.historical) == (1, None, True)


def test_acknowledged_or_dropped_held_messages_are_forgotten():
    d = Delivery(ack_timeout=30)
    d.restore([1, 2, 3])
    d.on_connect()
    for _ in range(3):
        d.hold(d.next().seq)
    assert d.acknowledged([(1, 1)]) == [1]
    d.dropped([2])
    assert d.held == 1 and d.acknowledged([(0, 10**9)]) == [3]
    assert d.unacknowledged == 0 and d.release_held() == 0
