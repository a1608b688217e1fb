"""Memory buffer in front of the outbox: oldest dropped first, the drop recorded as a gap."""

from __future__ import annotations

import pytest

from edge.batcher import Batcher, SealedBatch
from edge.config import ConfigError, parse_config
from edge.contract.messages import BatchContext, Sample
from edge.membuffer import Gap, MemoryBuffer
from edge.reading import Reading

CTX = {"a": BatchContext("s", "U1", "B-1", "p1"), "b": BatchContext("s", "U1", "B-1", "p2")}


def batch(t0: int, n: int, tag: str = "T", ctx=lambda i: "a") -> SealedBatch:
    samples = tuple(Sample(tag, t0 + i, float(i), 0, ctx(i)) for i in range(n))
    used = {s.ctx for s in samples}
    return SealedBatch(samples, {k: c for k, c in CTX.items() if k in used})


def test_drop_oldest_whole_and_partial_batches():
    buf = MemoryBuffer()
    buf.add(batch(0, 10, "A"))
    buf.add(batch(100, 10, "B", ctx=lambda i: "a" if i < 5 else "b"))
    buf.add(SealedBatch((), {}))  # empty batches are not held
    assert len(buf) == 20
    assert buf.drop_oldest(15) == 15
    assert len(buf) == 5
    (rest,) = buf.take()
    assert [s.ts for s in rest.samples] == [105, 106, 107, 108, 109]
    assert set(rest.contexts) == {"b"}  # a context no kept sample uses is not carried
    assert (buf.gap.samples, buf.gap.start, buf.gap.end, buf.gap.tags) == (15, 0, 104, {"A", "B"})
    assert buf.drop_oldest(5) == 0 and len(buf) == 0


def test_failed_commit_puts_batches_and_gap_back_in_order():
    buf = MemoryBuffer()
    buf.add(batch(0, 3))
    buf.drop_oldest(1)
    taken, gap = buf.take(), buf.take_gap()
    assert buf.take_gap() is None
    buf.add(batch(10, 2))  # sealed while the commit was running
    buf.dropped_readings([Reading("X", 50, 1.0)])  # dropped meanwhile
    buf.put_back(taken)
    buf.restore_gap(gap)
    assert [s.ts for b in buf.take() for s in b.samples] == [1, 2, 10, 11]
    assert (buf.gap.samples, buf.gap.start, buf.gap.end, buf.gap.tags) == (2, 0, 50, {"T", "X"})


def test_gap_event_names_the_reason_range_and_tags():
    gap = Gap()
    gap.add([5, 3, 9], ["B", "A"], 3)
    ev = gap.event(edge="e", site="s", session="S", event_id="S-memgap-1", now_us=100, bound=1000,
                   error="outbox /x: commit failed: disk full")
    assert (ev.type, ev.start, ev.end, ev.tags, ev.id) == ("data-gap", 3, 9, ("A", "B"), "S-memgap-1")
    assert ev.detail == {"reason": "max_memory_samples", "session": "S", "samples": 3, "bound": 1000,
                         "outbox_error": "outbox /x: commit failed: disk full"}


def test_batcher_drops_oldest_pending_readings():
    b = Batcher(max_samples=100, max_delay=1.0)
    for i in range(5):
        b.add(Reading("T", i, float(i)), now=0.0)
    assert [r.ts for r in b.drop_oldest(3)] == [0, 1, 2]
    assert len(b) == 2 and b.deadline() == 1.0
    assert len(b.drop_oldest(10)) == 2 and b.deadline() is None


def test_memory_bound_setting_is_validated():
    base = {"edge": {"id": "e", "site": "s"}}
    assert parse_config(base).outbox.max_memory_samples == 200_000
    with pytest.raises(ConfigError, match=r"outbox.max_memory_samples"):
        parse_config({**base, "outbox": {"max_memory_samples": 5000}, "mqtt": {"max_samples_per_message": 10000}})
    with pytest.raises(ConfigError, match=r"outbox.max_memory_samples"):
        parse_config({**base, "outbox": {"max_memory_samples": 10}})
