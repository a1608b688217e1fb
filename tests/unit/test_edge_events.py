"""Event delivery state: kept until the historian acknowledges, re-sent after the timeout."""

from __future__ import annotations

import pytest

from edge.events import EventDelivery


def send_all(d: EventDelivery, now: float) -> list[str]:
    out = []
    while (nxt := d.next()) is not None:
        d.mark_sent(nxt[0], nxt[1], now)
        out.append(nxt[0])
    return out


def test_puback_is_not_enough_only_the_historian_ack_forgets():
    d = EventDelivery(ack_timeout=10)
    d.stored("a", b"A")
    d.stored("b", b"B")
    assert send_all(d, 0.0) == ["a", "b"]
    d.puback("a")
    d.puback("b")
    assert len(d) == 2 and not d.has_work()
    assert d.acknowledged(["b", "zzz"]) == ["b"]
    assert len(d) == 1
    assert d.acknowledged(["b"]) == []  # repeated: harmless


def test_unacknowledged_events_are_resent_after_the_timeout():
    d = EventDelivery(ack_timeout=10)
    d.stored("a", b"A")
    send_all(d, 100.0)
    d.puback("a")
    assert d.next_expiry() == 110.0
    assert d.expire(109.9) == 0 and not d.has_work()
    assert d.expire(110.0) == 1 and d.resent == 1
    assert d.next() == ("a", b"A")


def test_disconnect_resends_unconfirmed_keeps_confirmed_waiting():
    d = EventDelivery(ack_timeout=10)
    for i in "abc":
        d.stored(i, i.encode())
    send_all(d, 0.0)
    d.puback("b")
    d.on_disconnect()
    assert send_all(d, 1.0) == ["a", "c"]
    assert d.next_expiry() == 10.0  # b still waits for its ack from its first send


def test_failed_publish_goes_back_and_stored_twice_is_once():
    d = EventDelivery(ack_timeout=10)
    d.stored("a", b"A")
    event_id, payload = d.next()
    d.mark_sent(event_id, payload, 0.0)
    d.stored("a", b"A")  # the same event reported again while in flight
    d.publish_failed("a")
    assert send_all(d, 1.0) == ["a"] and len(d) == 1


def test_ack_timeout_must_be_positive():
    with pytest.raises(ValueError):
        EventDelivery(0)
