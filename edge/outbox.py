"""The durable outbox: data messages on the gateway's disk until the historian has committed
them.

A sample counts as *captured* once the transaction holding its message has committed to a
SQLite database in WAL mode with ``synchronous=FULL`` (the commit survives power loss, not
only a process crash). Messages are committed in groups, one transaction per call of
:meth:`Outbox.append`, so durability costs one fsync per group rather than per sample.

Identity: every message is ``(edge, session, seq)``. The session is created with the outbox
database and kept for as long as that database exists, across any number of agent restarts;
``seq`` continues where it stopped (it is persisted in the same transaction as the messages
that consume it, so a number is never used twice). A new session starts only when the
outbox is fresh: first start, or after its directory was deleted or reset by an operator.

Rows are deleted only when the historian acknowledges them (:meth:`acknowledge`), or when a
bound (``max_bytes`` of stored payload, ``max_age``) forces the oldest out. Such a drop is
never silent: it is counted (persistently) and recorded as a ``data-gap`` event, stored here
too, that the agent publishes and keeps until the historian acknowledges its id.

With every commit the outbox also records, per tag, what was captured last (one upsert
per tag per commit, table ``tag_last``, see :mod:`edge.lastseen`): after a restart the agent
knows where each tag's series stopped (its downtime, :mod:`edge.downtime`) and which
re-reported value it already has. A restart whose data-gap event is not committed yet is
recorded in ``meta`` (key ``restart``) until it is.

The methods are blocking; the agent runs them in a worker thread (``asyncio.to_thread``)
because an fsync can take tens of milliseconds and must not stall acquisition on the event
loop. A lock serialises them: one connection, one writer.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from edge.batcher import SealedBatch
from edge.contract.codec import encode
from edge.contract.messages import DataMessage, EventMessage, now_micros
from edge.errors import OutboxError
from edge.lastseen import TagState, decode_value, encode_value, summarize

FILENAME = "outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq      INTEGER PRIMARY KEY,  -- within the outbox's session (meta 'session')
    created  INTEGER NOT NULL,     -- µs since epoch when committed (age bound)
    first_ts INTEGER NOT NULL,     -- earliest and latest sample time (data-gap ranges)
    last_ts  INTEGER NOT NULL,
    samples  INTEGER NOT NULL,
    tags     TEXT NOT NULL,        -- JSON list of the tags in the message
    size     INTEGER NOT NULL,
    payload  BLOB NOT NULL         -- the encoded DataMessage as first sent (historical=false)
);
CREATE TABLE IF NOT EXISTS events (
    id      TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tag_last (  -- what was last captured per tag (edge.lastseen)
    tag     TEXT PRIMARY KEY,
    last_ts INTEGER NOT NULL,  -- latest source time of any captured sample
    ts      INTEGER,           -- the last equipment sample; NULLs: none captured yet
    vtype   TEXT,
    value   TEXT,
    quality INTEGER
);
"""

# merges a batch's per-tag state into the stored one (edge.lastseen.merge, in SQL): the SET
# expressions see the stored row, ``excluded`` the new one
_UPSERT_TAG = """
INSERT INTO tag_last (tag, last_ts, ts, vtype, value, quality) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (tag) DO UPDATE SET
    last_ts = max(last_ts, excluded.last_ts),
    ts      = CASE WHEN excluded.vtype IS NULL THEN ts      ELSE excluded.ts      END,
    value   = CASE WHEN excluded.vtype IS NULL THEN value   ELSE excluded.value   END,
    quality = CASE WHEN excluded.vtype IS NULL THEN quality ELSE excluded.quality END,
    vtype   = coalesce(excluded.vtype, vtype)
"""


def new_session_id() -> str:
    """Readable, sortable and unique: creation time plus randomness."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


@dataclass(slots=True)
class AppendResult:
    """What one group commit stored and, if a bound was hit, what it dropped."""

    committed: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, payload)
    samples: int = 0
    dropped_seqs: list[int] = field(default_factory=list)
    dropped_samples: int = 0
    events: list[tuple[str, bytes]] = field(default_factory=list)  # (event id, payload)


class Outbox:
    """One edge's durable message store. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, edge: str, site: str,
                 max_bytes: int, max_age: float):
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        self.edge = edge
        self.site = site
        self.max_bytes = max_bytes
        self.max_age_us = int(max_age * 1_000_000)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        self.session: str = meta["session"]
        self.next_seq: int = int(meta["next_seq"])
        self.fresh: bool = meta.get("fresh") == "1"
        self.dropped_messages = int(meta.get("dropped_messages", 0))
        self.dropped_samples = int(meta.get("dropped_samples", 0))
        row = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
        self.count: int = row[0]
        self.bytes: int = row[1]

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, directory: str | Path, *, edge: str, site: str, max_bytes: int = 1_000_000_000,
             max_age: float = 7 * 86400.0) -> Outbox:
        """Open (or create) the outbox in ``directory``. Raises :class:`OutboxError`."""
        directory = Path(directory)
        path = directory / FILENAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            have = conn.execute("SELECT value FROM meta WHERE key = 'session'").fetchone()
            if have is None:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("session", new_session_id()), ("next_seq", "1"), ("edge", edge),
                     ("created", str(now_micros())), ("dropped_messages", "0"),
                     ("dropped_samples", "0")],
                )
                fresh = True
            else:
                owner = conn.execute("SELECT value FROM meta WHERE key = 'edge'").fetchone()
                if owner and owner[0] != edge:
                    conn.execute("ROLLBACK")
                    raise OutboxError(f"{path} belongs to edge {owner[0]!r}, not {edge!r}: "
                                      "give each edge its own data_dir")
                fresh = False
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise OutboxError(f"cannot open outbox {path}: {err}") from err
        box = cls(conn, path, edge=edge, site=site, max_bytes=max_bytes, max_age=max_age)
        box.fresh = fresh
        return box

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error as err:
                raise OutboxError(f"cannot close outbox {self.path}: {err}") from err

    # ------------------------------------------------------------------ writing

    def append(self, batches: Sequence[SealedBatch], *, now_us: int | None = None,
               events: Sequence[EventMessage] = (), restart_done: bool = False) -> AppendResult:
        """Seal ``batches`` into data messages and commit them in one transaction (the group
        commit), with ``events`` (stored until acknowledged) and the per-tag record of what
        was captured last (:meth:`last_seen`); ``restart_done`` deletes the restart record
        (its event is among ``events``). Then enforce the bounds.
        Returns what was stored (``events`` included in ``result.events``) and dropped."""
        now_us = now_micros() if now_us is None else now_us
        result = AppendResult()
        tag_rows = _tag_rows(batches)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                seq = self.next_seq
                rows = []
                for b in batches:
                    if not b.samples:
                        continue
                    payload = encode(DataMessage(
                        edge=self.edge, site=self.site, session=self.session, seq=seq,
                        sent=now_us, samples=b.samples, contexts=b.contexts, historical=False,
                    ))
                    rows.append((seq, now_us, b.first_ts, b.last_ts, len(b.samples),
                                 orjson.dumps(b.tags).decode(), len(payload), payload))
                    result.committed.append((seq, payload))
                    result.samples += len(b.samples)
                    seq += 1
                self._conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._conn.executemany(_UPSERT_TAG, tag_rows)
                if restart_done:
                    self._conn.execute("DELETE FROM meta WHERE key = 'restart'")
                for ev in events:
                    ev_payload = encode(ev)
                    self._conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?)",
                                       (ev.id, now_us, ev_payload))
                    result.events.append((ev.id, ev_payload))
                self._conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq),))
                added = sum(r[6] for r in rows)
                self._enforce(now_us, result, extra_bytes=added)
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: commit failed: {err}") from err
            self.next_seq = seq
            self.count += len(rows) - len(result.dropped_seqs)
            self.bytes += added
        return result

    def enforce_bounds(self, *, now_us: int | None = None) -> AppendResult:
        """Apply the age bound (and the size bound) without adding anything; for the agent's
        periodic check, so old messages go even when no new data arrives."""
        now_us = now_micros() if now_us is None else now_us
        result = AppendResult()
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._enforce(now_us, result, extra_bytes=0)
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: bound enforcement failed: {err}") from err
            self.count -= len(result.dropped_seqs)
        return result

    def _enforce(self, now_us: int, result: AppendResult, *, extra_bytes: int) -> None:
        """Inside a transaction: drop the oldest messages while a bound is exceeded."""
        total = self.bytes + extra_bytes
        for reason in ("max_age", "max_bytes"):
            victims: list[tuple] = []
            if reason == "max_age":
                victims = self._conn.execute(
                    "SELECT seq, first_ts, last_ts, samples, tags, size FROM messages "
                    "WHERE created < ? ORDER BY seq", (now_us - self.max_age_us,)).fetchall()
            elif total > self.max_bytes:
                excess = total - self.max_bytes
                freed = 0
                for row in self._conn.execute(
                        "SELECT seq, first_ts, last_ts, samples, tags, size FROM messages ORDER BY seq"):
                    victims.append(row)
                    freed += row[5]
                    if freed >= excess:
                        break
            if not victims:
                continue
            seqs = [v[0] for v in victims]
            self._conn.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in seqs])
            freed = sum(v[5] for v in victims)
            samples = sum(v[3] for v in victims)
            total -= freed
            self.bytes -= freed
            tags = sorted({t for v in victims for t in orjson.loads(v[4])})
            event = EventMessage(
                edge=self.edge, site=self.site,
                id=f"{self.session}-gap-{seqs[0]}-{seqs[-1]}", type="data-gap",
                ts=now_us, sent=now_us,
                start=min(v[1] for v in victims), end=max(v[2] for v in victims), tags=tuple(tags),
                detail={"reason": reason, "session": self.session, "first_seq": seqs[0],
                        "last_seq": seqs[-1], "messages": len(seqs), "samples": samples},
            )
            payload = encode(event)
            self._conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?)",
                               (event.id, now_us, payload))
            self.dropped_messages += len(seqs)
            self.dropped_samples += samples
            self._conn.executemany("UPDATE meta SET value = ? WHERE key = ?", [
                (str(self.dropped_messages), "dropped_messages"),
                (str(self.dropped_samples), "dropped_samples")])
            result.dropped_seqs += seqs
            result.dropped_samples += samples
            result.events.append((event.id, payload))

    def acknowledge(self, session: str, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Forget the messages the historian committed; returns the seqs actually deleted.
        An acknowledgement for another session, or repeated, deletes nothing (harmless)."""
        if session != self.session:
            return []
        deleted: list[int] = []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                freed = 0
                for first, last in ranges:
                    rows = self._conn.execute(
                        "DELETE FROM messages WHERE seq BETWEEN ? AND ? RETURNING seq, size",
                        (first, last)).fetchall()
                    deleted += [r[0] for r in rows]
                    freed += sum(r[1] for r in rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: acknowledgement failed: {err}") from err
            self.count -= len(deleted)
            self.bytes -= freed
        return deleted

    def acknowledge_events(self, ids: Iterable[str]) -> list[str]:
        """Forget the events the historian committed (ids listed in an acknowledgement);
        returns the ids actually deleted. Unknown or repeated ids are harmless."""
        ids = list(ids)
        if not ids:
            return []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                deleted = []
                for event_id in ids:
                    deleted += [r[0] for r in self._conn.execute(
                        "DELETE FROM events WHERE id = ? RETURNING id", (event_id,))]
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: event acknowledgement failed: {err}") from err
        return deleted

    # ------------------------------------------------------------------ reading

    def pending_seqs(self) -> list[int]:
        """Every stored (unacknowledged) message, oldest first."""
        with self._lock:
            try:
                return [r[0] for r in self._conn.execute("SELECT seq FROM messages ORDER BY seq")]
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: read failed: {err}") from err

    def load(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """Payloads of the given messages (those still stored)."""
        if not seqs:
            return {}
        with self._lock:
            try:
                marks = ",".join("?" * len(seqs))
                return dict(self._conn.execute(
                    f"SELECT seq, payload FROM messages WHERE seq IN ({marks})", list(seqs)))
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: read failed: {err}") from err

    def last_seen(self) -> dict[str, TagState]:
        """Per tag, what was captured last (see :mod:`edge.lastseen`)."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT tag, last_ts, ts, vtype, value, quality FROM tag_last").fetchall()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: read failed: {err}") from err
        return {tag: TagState(last_ts, None if vtype is None else (ts, decode_value(vtype, value), quality))
                for tag, last_ts, ts, vtype, value, quality in rows}

    def restart_record(self) -> dict | None:
        """The record of a restart whose data-gap event is not committed yet (None: none)."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'restart'").fetchone()
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: read failed: {err}") from err
        return None if row is None else orjson.loads(row[0])

    def save_restart_record(self, record: dict) -> None:
        """Store the record of this restart until :meth:`append` commits its event."""
        with self._lock:
            try:
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('restart', ?)",
                                   (orjson.dumps(record).decode(),))
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: cannot store the restart record: {err}") from err

    def pending_events(self) -> list[tuple[str, bytes]]:
        with self._lock:
            try:
                return list(self._conn.execute("SELECT id, payload FROM events ORDER BY created, id"))
            except sqlite3.Error as err:
                raise OutboxError(f"outbox {self.path}: read failed: {err}") from err

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction open: nothing to undo
        # the in-memory counters may have moved before the failure: take them from the file
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
            self.next_seq = int(meta["next_seq"])
            self.dropped_messages = int(meta.get("dropped_messages", 0))
            self.dropped_samples = int(meta.get("dropped_samples", 0))
            self.count, self.bytes = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
        except sqlite3.Error:
            pass  # the file itself is failing; the next operation reports it


def _tag_rows(batches: Sequence[SealedBatch]) -> list[tuple]:
    state = summarize(s for b in batches for s in b.samples)
    rows = []
    for tag, st in state.items():
        if st.sample is None:
            rows.append((tag, st.last_ts, None, None, None, None))
        else:
            ts, value, quality = st.sample
            rows.append((tag, st.last_ts, ts, *encode_value(value), quality))
    return rows


def reset(directory: str | Path) -> None:
    """Delete an outbox (an operator's decision: the next start begins a new session)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(Path(directory) / (FILENAME + suffix))
        except FileNotFoundError:
            pass
