"""Durable outbox: group commits, identity across restarts, acknowledgements, bounds."""

from __future__ import annotations

import sqlite3

import pytest

from edge.batcher import SealedBatch
from edge.contract.codec import decode
from edge.contract.messages import BatchContext, DataMessage, EventMessage, Sample
from edge.errors import OutboxError
from edge.outbox import FILENAME, Outbox, reset

US = 1_000_000


def batch(tag: str, t0: int, n: int = 10) -> SealedBatch:
    return SealedBatch(tuple(Sample(tag, t0 + i, float(i), 0, "c0") for i in range(n)),
                       {"c0": BatchContext("site-a", "BR01", "B-1", "growth")})


def open_box(path, **kw) -> Outbox:
    return Outbox.open(path, edge="gw-1", site="site-a", **kw)


def test_wal_and_full_sync(tmp_path):
    box = open_box(tmp_path)
    conn = sqlite3.connect(tmp_path / FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()


def test_group_commit_assigns_consecutive_seqs_and_encodes(tmp_path):
    box = open_box(tmp_path)
    res = box.append([batch("A", 100), batch("B", 200, 5)], now_us=10 * US)
    assert [s for s, _ in res.committed] == [1, 2] and res.samples == 15
    msg = decode(res.committed[1][1])
    assert isinstance(msg, DataMessage)
    assert (msg.edge, msg.site, msg.session, msg.seq, msg.historical) == ("gw-1", "site-a", box.session, 2, False)
    assert msg.samples == batch("B", 200, 5).samples
    assert msg.contexts["c0"].batch == "B-1"
    assert box.count == 2 and box.bytes == sum(len(p) for _, p in res.committed)
    box.close()


def test_session_and_seq_survive_restart_unacked_kept(tmp_path):
    box = open_box(tmp_path)
    assert box.fresh
    session = box.session
    box.append([batch("A", 0), batch("A", 10), batch("A", 20)])
    assert box.acknowledge(session, [(1, 1)]) == [1]
    box.close()

    box = open_box(tmp_path)
    assert not box.fresh and box.session == session
    assert box.pending_seqs() == [2, 3]
    assert box.count == 2
    res = box.append([batch("A", 30)])
    assert res.committed[0][0] == 4  # seq continues
    loaded = box.load([2, 4, 99])
    assert set(loaded) == {2, 4}
    box.close()


def test_ack_of_other_session_or_repeated_is_harmless(tmp_path):
    box = open_box(tmp_path)
    box.append([batch("A", 0), batch("A", 10)])
    assert box.acknowledge("other-session", [(1, 2)]) == []
    assert box.acknowledge(box.session, [(1, 2)]) == [1, 2]
    assert box.acknowledge(box.session, [(1, 2)]) == []
    assert box.count == 0 and box.bytes == 0
    box.close()


def test_reset_starts_a_new_session(tmp_path):
    box = open_box(tmp_path)
    first = box.session
    box.append([batch("A", 0)])
    box.close()
    reset(tmp_path)
    box = open_box(tmp_path)
    assert box.fresh and box.session != first and box.next_seq == 1
    box.close()


def test_outbox_of_another_edge_is_refused(tmp_path):
    open_box(tmp_path).close()
    with pytest.raises(OutboxError, match="belongs to edge"):
        Outbox.open(tmp_path, edge="gw-2", site="site-a")


def test_size_bound_drops_oldest_and_records_gap(tmp_path):
    box = open_box(tmp_path, max_bytes=64 * 1024)
    base = 10**15  # same-width timestamps: every message has the same size
    one = len(box.append([batch("A", base)]).committed[0][1])
    fits = (64 * 1024) // one
    for i in range(1, fits):
        box.append([batch("A", base + i * 1000)])
    assert box.dropped_messages == 0
    res = box.append([batch("B", base + 10**9), batch("B", base + 10**9 + 100)])
    assert res.dropped_seqs == [1, 2]
    assert box.bytes <= 64 * 1024
    assert box.dropped_messages == 2 and box.dropped_samples == 20
    (event_id, payload), = res.events
    ev = decode(payload)
    assert isinstance(ev, EventMessage) and ev.type == "data-gap" and ev.id == event_id
    assert (ev.start, ev.end, ev.tags) == (base, base + 1009, ("A",))
    assert ev.detail["first_seq"] == 1 and ev.detail["last_seq"] == 2
    assert ev.detail["reason"] == "max_bytes" and ev.detail["session"] == box.session
    assert box.pending_seqs()[0] == 3
    # events are durable until the historian acknowledges them; counters survive a restart
    box.close()
    box = open_box(tmp_path, max_bytes=64 * 1024)
    assert [e for e, _ in box.pending_events()] == [event_id]
    assert box.dropped_samples == 20
    assert box.acknowledge_events(["unknown", event_id]) == [event_id]
    assert box.acknowledge_events([event_id]) == []  # repeated: harmless
    assert box.pending_events() == []
    box.close()


def test_age_bound_drops_old_messages(tmp_path):
    box = open_box(tmp_path, max_age=60)
    box.append([batch("A", 0)], now_us=1000 * US)
    box.append([batch("B", 5)], now_us=1030 * US)
    assert box.enforce_bounds(now_us=1059 * US).dropped_seqs == []
    res = box.enforce_bounds(now_us=1061 * US)
    assert res.dropped_seqs == [1]
    ev = decode(res.events[0][1])
    assert ev.detail["reason"] == "max_age" and ev.tags == ("A",)
    assert box.pending_seqs() == [2]
    box.close()


def test_failed_commit_changes_nothing(tmp_path):
    box = open_box(tmp_path, max_bytes=64 * 1024)
    box.append([batch("A", 0)])
    before = (box.next_seq, box.count, box.bytes)
    # a conflicting row makes the transaction fail half-way
    box._conn.execute("INSERT INTO messages VALUES (3, 0, 0, 0, 0, '[]', 1, x'00')")
    with pytest.raises(OutboxError):
        box.append([batch("B", 0), batch("C", 0)])
    assert box.next_seq == before[0]
    # the counters follow the file: the stray row is there, nothing of the failed group
    assert (box.count, box.bytes) == (before[1] + 1, before[2] + 1)
    assert box.pending_seqs() == [1, 3]
    box.close()


def test_last_seen_per_tag_is_committed_with_the_messages(tmp_path):
    import math

    from edge.contract.quality import BAD_NOT_CONNECTED
    from edge.lastseen import TagState

    box = open_box(tmp_path)
    box.append([batch("A", 100, 3), SealedBatch((Sample("B", 50, math.nan), Sample("B", 40, True)), {})])
    box.append([SealedBatch((Sample("A", 500, None, BAD_NOT_CONNECTED),), {})])
    box.close()
    box = open_box(tmp_path)
    seen = box.last_seen()
    assert seen["A"] == TagState(500, (102, 2.0, 0))  # the connection record keeps the sample
    assert seen["B"].last_ts == 50 and seen["B"].sample == (40, True, 0)
    assert box.restart_record() is None
    box.save_restart_record({"before": {"A": 500}, "restarted": 7, "restarts": 1})
    assert box.restart_record() == {"before": {"A": 500}, "restarted": 7, "restarts": 1}
    box.append([], restart_done=True)
    assert box.restart_record() is None
    box.close()


def test_failed_commit_leaves_last_seen_unchanged(tmp_path):
    box = open_box(tmp_path)
    box.append([batch("A", 100, 1)])
    box._conn.execute("CREATE TRIGGER nope BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'no'); END")
    with pytest.raises(OutboxError):
        box.append([batch("A", 900, 1)])
    assert box.last_seen()["A"].last_ts == 100
    box.close()
