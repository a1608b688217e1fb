"""The samples writer: one database transaction per batch of messages.

Per batch, in one transaction: births upsert tags (and add a tag_history row when the
metadata changed); data messages are claimed in ``ingest_log`` with
``INSERT … ON CONFLICT DO NOTHING RETURNING`` and only the newly claimed ones get their
samples binary-COPYed (a message already committed, or being committed by another worker
which then wins, is skipped: that worker's insert blocks on the primary key until the
other commits, then does nothing); contexts are resolved to ids; batches/phases widen
their spans; on plain PostgreSQL the touched rollup buckets are queued for the rollup
maintainer (:mod:`historian.store.rollups`; recomputing them here cost ~40 % of the
transaction); events, edge states and quarantine rows are inserted. Either all of that
commits or none of it.

A batch that fails for a reason other than an unavailable database (a value PostgreSQL
refuses) is retried message by message; messages that still fail are quarantined with the
error, so one bad message never blocks the stream.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from edge.contract import BatchContext, BirthMessage, DataMessage, EventMessage, StateMessage, encode

from . import rollups
from .backend import Backend
from .packing import COPY_PACKED_SQL, Packer
from .errors import StoreError, StoreUnavailable
from .rows import (
    COPY_HEADER, COPY_TRAILER, RowError, batch_and_phase_bounds, from_us, message_rows, sample_rows,
)

log = logging.getLogger(__name__)

COPY_SQL = (
    "COPY batchwire.samples (tag_id, ts, value, value_text, quality, context_id) "
    "FROM STDIN (FORMAT BINARY)"
)
COPY_TYPES = ["int4", "timestamptz", "float8", "text", "int4", "int4"]
DEFAULT_SKEW_LIMIT_US = 3_600_000_000  # 1 h
#: how long a writer trusts its cached tag owners; bounds how long an ownership change made
#: elsewhere (``batchwire db tags reassign``) can go unnoticed by a running ingest worker
DEFAULT_TAG_CACHE_TTL = 60.0
#: quarantine reason for a sample or birth entry of a tag another edge owns
OWNED_BY_OTHER_EDGE = "tag-owned-by-other-edge"


@dataclass(slots=True)
class DataIn:
    """A decoded data message (a :class:`DataMessage`, or the
    :class:`~edge.contract.codec.DataRows` ingest decodes into) and how it arrived."""

    msg: DataMessage
    received: int  # µs since epoch
    topic: str = ""
    payload: bytes = b""


@dataclass(slots=True)
class Quarantined:
    """A payload that cannot be applied, kept raw with the reason."""

    topic: str
    reason: str
    detail: str
    payload: bytes
    received: int
    edge: str | None = None
    session: str | None = None
    seq: int | None = None


@dataclass
class WriteBatch:
    births: list[BirthMessage] = field(default_factory=list)
    data: list[DataIn] = field(default_factory=list)
    events: list[EventMessage] = field(default_factory=list)
    states: list[StateMessage] = field(default_factory=list)
    quarantine: list[Quarantined] = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.births) + len(self.data) + len(self.events) + len(self.states)
                + len(self.quarantine))


@dataclass
class WriteResult:
    applied: list[DataIn] = field(default_factory=list)  # newly committed messages
    duplicates: list[DataIn] = field(default_factory=list)  # committed before (re-delivery)
    refused: list[DataIn] = field(default_factory=list)  # stored in quarantine instead
    #: events now in the database - newly inserted or stored before (a re-sent event) - and
    #: events the store refused and quarantined: all of them are acknowledged to their edge
    events: list[EventMessage] = field(default_factory=list)
    #: edge -> its current session (batchwire.edges) for the edges of ``events``, when known
    edge_sessions: dict[str, str] = field(default_factory=dict)
    samples: int = 0
    quarantined: int = 0
    skewed: int = 0
    committed_at: datetime | None = None

    def merge(self, other: "WriteResult") -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.refused += other.refused
        self.events += other.events
        self.edge_sessions.update(other.edge_sessions)
        self.samples += other.samples
        self.quarantined += other.quarantined
        self.skewed += other.skewed
        self.committed_at = other.committed_at or self.committed_at


_TRANSIENT = (psycopg.OperationalError, psycopg.errors.DeadlockDetected,
              psycopg.errors.SerializationFailure, PoolTimeout)


def open_pool(dsn: str, *, max_size: int = 4, name: str = "batchwire-writer") -> ConnectionPool:
    """A pool whose connections are checked before they are handed out, so one broken by a
    server restart is replaced instead of failing the next batch."""
    return ConnectionPool(
        dsn, min_size=1, max_size=max_size, name=name, open=False,
        check=ConnectionPool.check_connection, kwargs={"autocommit": False},
        reconnect_timeout=0,
    )


class Writer:
    """Writes :class:`WriteBatch` es. Thread-compatible: use one writer per thread."""

    def __init__(self, pool: ConnectionPool, backend: Backend, *, worker: str | None = None,
                 skew_limit_us: int = DEFAULT_SKEW_LIMIT_US, timeout: float = 10.0,
                 tag_cache_ttl: float = DEFAULT_TAG_CACHE_TTL):
        self.pool = pool
        self.backend = backend
        self.worker = worker
        self.skew_limit_us = skew_limit_us
        self.timeout = timeout
        self.tag_cache_ttl = tag_cache_ttl
        # committed tag registry as this writer last read it: name -> (tag_id, owning edge),
        # and per edge the tags it owns (name -> tag_id): the view a data message is
        # resolved against, so a tag of another edge is simply "not declared" for it
        self._tags: dict[str, tuple[int, str | None]] = {}
        self._edge_tags: dict[str, dict[str, int]] = {}
        self._tags_read_at = time.monotonic()
        self._contexts: dict[BatchContext, int] = {}

    # ------------------------------------------------------------------ public

    def write(self, batch: WriteBatch) -> WriteResult:
        """Apply ``batch`` atomically. Raises :class:`StoreUnavailable` when the database
        cannot be reached or a transient conflict aborted the transaction (retry the same
        batch later); never raises for bad content."""
        try:
            return self._write_once(batch)
        except StoreUnavailable:
            raise
        except (psycopg.Error, RowError) as err:
            if len(batch) == 1:
                return self._quarantine_failed(batch, err)
            log.warning("batch of %d failed (%s); applying its messages one by one", len(batch), err)
            total = WriteResult()
            for single in _singles(batch):
                try:
                    total.merge(self._write_once(single))
                except StoreUnavailable:
                    raise
                except (psycopg.Error, RowError) as one_err:
                    total.merge(self._quarantine_failed(single, one_err))
            return total

    # ------------------------------------------------------------------ internals

    def _write_once(self, batch: WriteBatch, refused_events: tuple[EventMessage, ...] = ()) -> WriteResult:
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                new_tags: dict[str, tuple[int, str | None]] = {}
                new_contexts: dict[BatchContext, int] = {}
                with conn.transaction(), conn.cursor() as cur:
                    result = self._apply(cur, batch, new_tags, new_contexts)
                    result.events += refused_events
                    self._edge_sessions(cur, result)
                    result.committed_at = cur.execute("SELECT now()").fetchone()[0]
                # ids become cacheable only once they are committed
                self._remember_tags(new_tags)
                self._contexts.update(new_contexts)
                return result
        except _TRANSIENT as err:
            raise StoreUnavailable(f"database unavailable: {err}") from err

    def _apply(self, cur: psycopg.Cursor, batch: WriteBatch,
               new_tags: dict[str, tuple[int, str | None]],
               new_contexts: dict[BatchContext, int]) -> WriteResult:
        result = WriteResult()
        quarantine = list(batch.quarantine)
        for birth in batch.births:
            refused = self._apply_birth(cur, birth, new_tags)
            if refused:
                q = _refused_birth(birth, refused)
                if not self._quarantined_before(cur, q):
                    quarantine.append(q)
        if batch.data:
            edge_tags, owners = self._tag_ids(cur, batch.data, new_tags)
            no_tags: dict[str, int] = {}
            ctx_ids = self._context_ids(cur, batch.data, new_contexts)
            # plain backend: samples packed per (tag, hour) into samples_packed rows
            plain = self.backend is Backend.PLAIN
            packer = Packer() if plain else None
            planned = []
            for item in batch.data:
                m = item.msg
                keymap = {k: ctx_ids[c] for k, c in m.contexts.items()}
                # only the tags this message's edge declared: another edge's are not its own
                tag_ids = edge_tags.get(m.edge, no_tags)
                try:
                    mr = message_rows(m, tag_ids, keymap, item.received, self.skew_limit_us,
                                      with_buckets=plain, tuples=not plain)
                except (RowError, OverflowError, struct.error) as err:
                    if isinstance(err, RowError):
                        reason = err.reason
                    else:
                        reason = "invalid-timestamp"
                    quarantine.append(Quarantined(item.topic, reason, str(err), item.payload,
                                                  item.received, m.edge, m.session, m.seq))
                    result.refused.append(item)
                    continue
                planned.append((item, mr, keymap, tag_ids))
            new_keys = self._claim(cur, planned)
            rows_written = 0
            batches: dict[tuple, list] = {}
            phases: dict[tuple, list] = {}
            buckets: set[tuple[int, int]] = set()
            chunks = [COPY_HEADER]
            for item, mr, keymap, tag_ids in planned:
                m = item.msg
                key = (m.edge, m.session, m.seq)
                if key not in new_keys:
                    result.duplicates.append(item)
                    continue
                # claimed once: a second copy of the message in this same batch is a duplicate
                new_keys.discard(key)
                if packer is not None:
                    packer.add(sample_rows(m), tag_ids, keymap)
                else:
                    chunks.append(mr.data)
                rows_written += mr.count
                result.applied.append(item)
                result.skewed += mr.skewed
                batch_and_phase_bounds(m.contexts, mr.context_bounds, batches, phases)
                buckets |= mr.buckets
                if mr.undeclared:
                    quarantine.append(_not_applied(item, mr.undeclared, owners))
            if rows_written:
                if packer is not None:
                    chunks.append(packer.copy_data())
                chunks.append(COPY_TRAILER)
                with cur.copy(COPY_SQL if packer is None else COPY_PACKED_SQL) as copy:
                    copy.write(b"".join(chunks))
            result.samples = rows_written
            self._upsert_spans(cur, batches, phases)
            if self.backend is Backend.PLAIN:
                rollups.queue(cur, buckets)
        for ev in batch.events:
            cur.execute(
                "INSERT INTO batchwire.events (edge, site, source_id, type, ts, start_ts, end_ts, tags, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (edge, source_id) DO NOTHING",
                (ev.edge, ev.site, ev.id, ev.type, from_us(ev.ts),
                 None if ev.start is None else from_us(ev.start),
                 None if ev.end is None else from_us(ev.end), list(ev.tags),
                 psycopg.types.json.Jsonb(ev.detail)),
            )
        # inserted now or found stored (ON CONFLICT): either way it is in the database
        result.events += batch.events
        for st in batch.states:
            # the newest report wins even when state messages arrive out of order
            cur.execute(
                "INSERT INTO batchwire.edges AS e (edge, site, session, state, changed_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (edge) DO UPDATE SET "
                "site = excluded.site, session = excluded.session, state = excluded.state, "
                "changed_at = excluded.changed_at WHERE e.changed_at <= excluded.changed_at",
                (st.edge, st.site, st.session, st.state, from_us(st.sent)),
            )
        if quarantine:
            cur.executemany(
                "INSERT INTO batchwire.quarantine (received, topic, reason, detail, edge, session, seq, payload, worker) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(from_us(q.received), q.topic, q.reason, q.detail, q.edge, q.session, q.seq,
                  q.payload, self.worker) for q in quarantine],
            )
        result.quarantined = len(quarantine)
        return result

    @staticmethod
    def _edge_sessions(cur: psycopg.Cursor, result: WriteResult) -> None:
        """Fill ``result.edge_sessions`` for the edges of ``result.events`` (read in the
        same transaction, so a state message of this batch is already counted)."""
        edges = sorted({e.edge for e in result.events if "\x00" not in e.edge})
        if edges:
            cur.execute("SELECT edge, session FROM batchwire.edges WHERE edge = ANY(%s) AND session IS NOT NULL",
                        (edges,))
            result.edge_sessions.update(dict(cur.fetchall()))

    def _apply_birth(self, cur: psycopg.Cursor, birth: BirthMessage,
                     new_tags: dict[str, tuple[int, str | None]]) -> dict[str, str]:
        """Register the tags ``birth`` declares. A tag owned by another edge is not taken
        over (its metadata stays as its owner declared it): returns those tags as
        name -> owning edge, for the caller to quarantine. A tag with no owner (created
        outside a birth, or released) is claimed."""
        tags = {t.name: t for t in birth.tags}  # a name twice: the last declaration wins
        names = sorted(tags)
        cols = [[getattr(tags[n], f) for n in names]
                for f in ("name", "datatype", "unit", "description", "source", "low", "high")]
        cur.execute(
            """
            WITH incoming AS (
                SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                                     %s::float8[], %s::float8[])
                       AS t(name, datatype, unit, description, source, low, high)),
            changed AS (
                INSERT INTO batchwire.tags AS g (name, datatype, unit, description, source, low, high, site, edge)
                SELECT name, datatype, unit, description, source, low, high, %s, %s FROM incoming
                ORDER BY name
                ON CONFLICT (name) DO UPDATE SET
                    datatype = excluded.datatype, unit = excluded.unit,
                    description = excluded.description, source = excluded.source,
                    low = excluded.low, high = excluded.high, site = excluded.site,
                    edge = excluded.edge, updated_at = now()
                WHERE (g.edge IS NULL OR g.edge = excluded.edge)
                  AND (g.datatype, g.unit, g.description, g.source, g.low, g.high, g.site, g.edge)
                      IS DISTINCT FROM
                      (excluded.datatype, excluded.unit, excluded.description, excluded.source,
                       excluded.low, excluded.high, excluded.site, excluded.edge)
                RETURNING g.*)
            INSERT INTO batchwire.tag_history
                (tag_id, valid_from, datatype, unit, description, source, low, high, site, edge, session)
            SELECT tag_id, clock_timestamp(), datatype, unit, description, source, low, high, site, edge, %s
            FROM changed
            """,
            (*cols, birth.site, birth.edge, birth.session),
        )
        # read back after the upsert: a concurrent birth of another edge that inserted the
        # tag first has committed by now (ON CONFLICT waited for it), so its ownership shows
        cur.execute("SELECT name, tag_id, edge FROM batchwire.tags WHERE name = ANY(%s)", (names,))
        refused: dict[str, str] = {}
        for name, tag_id, owner in cur.fetchall():
            new_tags[name] = (tag_id, owner)
            if owner != birth.edge:
                refused[name] = owner
        cur.execute(
            "INSERT INTO batchwire.edges AS e (edge, site, session, state, changed_at, last_birth) "
            "VALUES (%s, %s, %s, 'online', %s, now()) ON CONFLICT (edge) DO UPDATE SET "
            "last_birth = now(), site = excluded.site",
            (birth.edge, birth.site, birth.session, from_us(birth.sent)),
        )
        return refused

    @staticmethod
    def _quarantined_before(cur: psycopg.Cursor, q: Quarantined) -> bool:
        """Whether the same refused birth entries are in quarantine already. Births are
        retained and every worker receives them, on every reconnect of the edge: one record
        is enough. The lock makes workers refusing the same birth check one after another."""
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('batchwire.quarantine'), hashtext(%s))",
                    (f"{q.edge}/{q.session}",))
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM batchwire.quarantine WHERE reason = %s AND edge = %s "
            "AND session IS NOT DISTINCT FROM %s AND payload = %s)",
            (q.reason, q.edge, q.session, q.payload))
        return cur.fetchone()[0]

    def _tag_ids(self, cur: psycopg.Cursor, data: list[DataIn],
                 new_tags: dict[str, tuple[int, str | None]]
                 ) -> tuple[dict[str, dict[str, int]], dict[str, tuple[int, str | None]]]:
        """(edge -> {tag name: tag_id} of the tags that edge owns, name -> (tag_id, owner)
        of every known tag) for the data messages of a batch. The fast path - every tag of
        every message already cached as owned by the message's edge - reads nothing.
        Otherwise the missing names are read (in this transaction, so births of the same
        batch count); a tag of another edge is read again each time it is used, so an
        ownership change made meanwhile is seen."""
        if self._tags and time.monotonic() - self._tags_read_at > self.tag_cache_ttl:
            self._forget_tags()
        known = self._edge_tags
        missing: set[str] = set()
        no_tags: dict[str, int] = {}
        for item in data:
            missing |= {r[0] for r in sample_rows(item.msg)} - known.get(item.msg.edge, no_tags).keys()
        missing.difference_update(new_tags)  # read already in this transaction (births)
        if missing:
            cur.execute("SELECT name, tag_id, edge FROM batchwire.tags WHERE name = ANY(%s)",
                        (sorted(missing),))
            for name, tag_id, owner in cur.fetchall():
                new_tags[name] = (tag_id, owner)
        if not new_tags:
            return known, self._tags
        owners = {**self._tags, **new_tags}
        view: dict[str, dict[str, int]] = {}
        for edge in {item.msg.edge for item in data}:
            mine = dict(known.get(edge, no_tags))
            for name, (tag_id, owner) in new_tags.items():
                if owner == edge:
                    mine[name] = tag_id
                else:
                    mine.pop(name, None)
            view[edge] = mine
        return view, owners

    def _remember_tags(self, found: dict[str, tuple[int, str | None]]) -> None:
        """Cache committed tag ids and owners, moving a tag between edges when it changed."""
        for name, (tag_id, owner) in found.items():
            old = self._tags.get(name)
            if old is not None and old[1] is not None and old[1] != owner:
                self._edge_tags.get(old[1], {}).pop(name, None)
            self._tags[name] = (tag_id, owner)
            if owner is not None:
                self._edge_tags.setdefault(owner, {})[name] = tag_id

    def _forget_tags(self) -> None:
        self._tags = {}
        self._edge_tags = {}
        self._tags_read_at = time.monotonic()

    def _context_ids(self, cur: psycopg.Cursor, data: list[DataIn],
                     new_contexts: dict[BatchContext, int]) -> dict[BatchContext, int]:
        known = self._contexts
        wanted = {c for item in data for c in item.msg.contexts.values()}
        missing = sorted((c for c in wanted if c not in known),
                         key=lambda c: (c.site, c.unit, c.batch or "", c.phase or "", c.recipe or ""))
        if not missing:
            return known
        cols = [[getattr(c, f) for c in missing] for f in ("site", "unit", "batch", "phase", "recipe")]
        cur.execute(
            "INSERT INTO batchwire.contexts (site, unit, batch, phase, recipe) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT DO NOTHING", cols)
        cur.execute(
            "SELECT c.context_id, c.site, c.unit, c.batch, c.phase, c.recipe FROM batchwire.contexts c "
            "JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) AS u(site, unit, batch, phase, recipe) "
            "ON (c.site, c.unit, c.batch, c.phase, c.recipe) IS NOT DISTINCT FROM (u.site, u.unit, u.batch, u.phase, u.recipe)",
            cols)
        for cid, site, unit, b, p, r in cur.fetchall():
            new_contexts[BatchContext(site, unit, b, p, r)] = cid
        return {**known, **new_contexts}

    def _claim(self, cur: psycopg.Cursor, planned) -> set[tuple[str, str, int]]:
        """Insert the ingest_log rows; return the keys that are new (ours to apply)."""
        if not planned:
            return set()
        # a fixed key order so two workers claiming overlapping sets cannot deadlock
        planned = sorted(planned, key=lambda p: (p[0].msg.edge, p[0].msg.session, p[0].msg.seq))
        cols: list[list] = [[] for _ in range(13)]
        for item, mr, _, _ in planned:
            m = item.msg
            for col, val in zip(cols, (
                m.edge, m.session, m.seq, m.site, from_us(m.sent), from_us(item.received),
                mr.count, None if mr.first_ts is None else from_us(mr.first_ts),
                None if mr.last_ts is None else from_us(mr.last_ts), m.historical, self.worker,
                mr.skewed, sum(mr.undeclared.values()),
            )):
                col.append(val)
        cur.execute(
            "INSERT INTO batchwire.ingest_log (edge, session, seq, site, sent, received, samples, "
            "first_ts, last_ts, historical, worker, skewed, undeclared) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::text[], %s::timestamptz[], "
            "%s::timestamptz[], %s::int4[], %s::timestamptz[], %s::timestamptz[], %s::bool[], "
            "%s::text[], %s::int4[], %s::int4[]) ON CONFLICT DO NOTHING RETURNING edge, session, seq",
            cols,
        )
        return {tuple(r) for r in cur.fetchall()}

    def _upsert_spans(self, cur: psycopg.Cursor, batches: dict, phases: dict) -> None:
        if batches:
            keys = sorted(batches)
            cur.execute(
                "INSERT INTO batchwire.batches AS b (site, unit, batch, recipe, start_ts, end_ts) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) "
                "ON CONFLICT (site, unit, batch) DO UPDATE SET "
                "start_ts = least(b.start_ts, excluded.start_ts), end_ts = greatest(b.end_ts, excluded.end_ts), "
                "recipe = coalesce(excluded.recipe, b.recipe)",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                 [batches[k][2] for k in keys], [from_us(batches[k][0]) for k in keys],
                 [from_us(batches[k][1]) for k in keys]),
            )
        if phases:
            keys = sorted(phases)
            cur.execute(
                "INSERT INTO batchwire.phases AS p (site, unit, batch, phase, start_ts, end_ts) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) "
                "ON CONFLICT (site, unit, batch, phase) DO UPDATE SET "
                "start_ts = least(p.start_ts, excluded.start_ts), end_ts = greatest(p.end_ts, excluded.end_ts)",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
                 [from_us(phases[k][0]) for k in keys], [from_us(phases[k][1]) for k in keys]),
            )

    def _quarantine_failed(self, single: WriteBatch, err: Exception) -> WriteResult:
        """Store what could not be applied in quarantine, with the error as the detail."""
        reason = getattr(err, "reason", "store-error")
        q: list[Quarantined] = []
        for d in single.data:
            q.append(Quarantined(d.topic, reason, str(err), d.payload, d.received,
                                 d.msg.edge, d.msg.session, d.msg.seq))
        for b in single.births:
            q.append(Quarantined("", reason, f"birth of {b.edge}: {err}", b"", _now_us(), b.edge, b.session))
        for e in single.events:
            # the event as it arrived (re-encoded): kept raw like any quarantined payload
            q.append(Quarantined("", reason, f"event {e.id} of {e.edge}: {err}", encode(e), _now_us(), e.edge))
        for s in single.states:
            q.append(Quarantined("", reason, f"state of {s.edge}: {err}", b"", _now_us(), s.edge, s.session))
        q += single.quarantine
        for x in q:  # text columns refuse NUL; hostile ids may carry it
            x.detail, x.reason = _clean(x.detail), _clean(x.reason)
            x.edge, x.session = _clean(x.edge), _clean(x.session)
        try:
            # refused events are acknowledged like refused data: a re-send would fail the same way
            result = self._write_once(WriteBatch(quarantine=q), tuple(single.events))
        except (psycopg.Error, RowError) as again:
            raise StoreError(f"cannot even quarantine a failed message: {again}") from again
        result.refused += single.data
        log.error("quarantined %d message(s) the store refused: %s", len(q), err)
        return result


def _not_applied(item: DataIn, skipped: dict[str, int],
                 owners: dict[str, tuple[int, str | None]]) -> Quarantined:
    """The quarantine record of a data message some of whose samples were not applied:
    tags no birth declared, and tags a birth of another edge declared (the wire protocol
    wants a tag declared by a birth of the message's own edge). One record per message,
    named after the stronger reason, listing every tag left out."""
    m = item.msg
    foreign = {t: n for t, n in skipped.items() if t in owners and owners[t][1] is not None}
    undeclared = {t: n for t, n in skipped.items() if t not in foreign}
    parts = []
    if foreign:
        names = ", ".join(f"{t} ({n}, owned by edge {owners[t][1]})" for t, n in sorted(foreign.items()))
        parts.append(f"samples of tags another edge declared were not applied: {names}")
    if undeclared:
        names = ", ".join(f"{t} ({n})" for t, n in sorted(undeclared.items()))
        parts.append(f"samples of tags no birth of edge {m.edge} declared were not applied: {names}"
                     if foreign else f"samples of tags no birth declared were not applied: {names}")
    return Quarantined(item.topic, OWNED_BY_OTHER_EDGE if foreign else "undeclared-tag", "; ".join(parts),
                       item.payload, item.received, m.edge, m.session, m.seq)


def _refused_birth(birth: BirthMessage, refused: dict[str, str]) -> Quarantined:
    """The quarantine record of the entries of ``birth`` naming tags another edge owns;
    the payload is those entries re-encoded as a birth of their own."""
    entries = tuple(t for t in birth.tags if t.name in refused)
    names = ", ".join(f"{n} (owned by edge {o})" for n, o in sorted(refused.items()))
    detail = (f"birth of {birth.edge} declares tags another edge owns; not taken over: {names} "
              f"(`batchwire db tags reassign TAG --edge {birth.edge}` moves one)")
    return Quarantined("", OWNED_BY_OTHER_EDGE, detail,
                       encode(dataclasses.replace(birth, tags=entries)), _now_us(), birth.edge, birth.session)


def _singles(batch: WriteBatch):
    """Each message of ``batch`` as its own batch; births stay in front of the data so a
    message declared and used in the same batch still finds its tags."""
    for b in batch.births:
        yield WriteBatch(births=[b])
    for d in batch.data:
        yield WriteBatch(data=[d])
    for e in batch.events:
        yield WriteBatch(events=[e])
    for s in batch.states:
        yield WriteBatch(states=[s])
    for q in batch.quarantine:
        yield WriteBatch(quarantine=[q])


def _clean(s: str | None) -> str | None:
    return None if s is None else s.replace("\x00", "\\0")


def _now_us() -> int:
    d = datetime.now(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
