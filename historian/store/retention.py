"""Raw-sample retention and compression settings per tag group (the retention job).

A tag's raw retention is that of its group (``batchwire.tag_group_of``: explicit member
first, then the most specific pattern), or the store default (``batchwire.settings``
``raw_retention``) when it is in no group; ``None`` keeps raw samples forever.

The job (:func:`apply_retention`; run hourly by each ingest worker and by
``batchwire db retention``):

* works out the *horizon*, the longest retention any tag has (``None`` when some tag keeps
  forever): whole partitions (plain) or chunks (TimescaleDB, as its retention policy)
  older than that are dropped, since no tag needs them;
* deletes, per tag, the raw samples of tags whose retention is shorter than the horizon
  (plain: whole packed rows, which span < 1 h, so up to an hour more than asked is kept;
  TimescaleDB: rows, also in compressed chunks);
* TimescaleDB: the compression policy is per hypertable and a chunk holds every tag, so it
  uses the *shortest* ``compress_after`` any tag has (its group's, else the default
  ``settings.compress_after``, else 2 days): compressing earlier loses nothing.

Rollups (``samples_1m``/``samples_1h``) are not raw samples and are kept. On TimescaleDB a
retention must exceed the continuous aggregates' 7-day refresh window
(:data:`MIN_TIMESCALE_RETENTION`), or a refresh would recompute buckets whose raw rows were
deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg

from .backend import Backend, installed_backend

DEFAULT_COMPRESS_AFTER = timedelta(days=2)
MIN_TIMESCALE_RETENTION = timedelta(days=8)
#: pg_try_advisory_xact_lock key: "batchwire retention"; one job at a time
LOCK_KEY = 0x62775F726574656E


@dataclass(frozen=True)
class RetentionPlan:
    """What the job does, from each tag's retention (pure)."""

    horizon: timedelta | None  # drop partitions/chunks older than this; None: none
    deletes: dict[int, timedelta] = field(default_factory=dict)  # tag_id -> its retention


def plan_retention(keeps: dict[int, timedelta | None], default: timedelta | None = None) -> RetentionPlan:
    """``keeps``: tag_id -> raw retention (None = forever) for every tag; ``default``: the
    store default, which also bounds the horizon when set (tags declared later follow it)."""
    values = list(keeps.values()) + ([default] if default is not None else [])
    if not values:
        return RetentionPlan(None)
    horizon = None if any(k is None for k in values) else max(values)
    deletes = {t: k for t, k in keeps.items() if k is not None and (horizon is None or k < horizon)}
    return RetentionPlan(horizon, deletes)


def plan_compress_after(per_tag: list[timedelta | None], default: timedelta | None) -> timedelta:
    """The hypertable's compress_after: the shortest any tag's group asks for, where a tag
    in no group or in a group without the setting counts as the default (else 2 days)."""
    fallback = default or DEFAULT_COMPRESS_AFTER
    return min((v or fallback for v in per_tag), default=fallback)


@dataclass
class RetentionReport:
    backend: str
    horizon: timedelta | None
    dropped: list[str] = field(default_factory=list)  # plain partitions dropped
    deleted_rows: int = 0  # packed rows (plain) or sample rows (TimescaleDB) deleted per tag
    tags_trimmed: int = 0
    compress_after: timedelta | None = None  # TimescaleDB policy now in force
    skipped: bool = False  # another job held the lock


def get_setting(conn: psycopg.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM batchwire.settings WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def set_setting(conn: psycopg.Connection, key: str, value: str | None) -> None:
    if value is None:
        conn.execute("DELETE FROM batchwire.settings WHERE key = %s", (key,))
    else:
        conn.execute("INSERT INTO batchwire.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value, updated_at = now()", (key, value))


def _interval_setting(conn: psycopg.Connection, key: str) -> timedelta | None:
    raw = get_setting(conn, key)
    return None if raw is None else conn.execute("SELECT %s::interval", (raw,)).fetchone()[0]


def tag_retentions(conn: psycopg.Connection) -> dict[int, timedelta | None]:
    default = _interval_setting(conn, "raw_retention")
    rows = conn.execute(
        "SELECT t.tag_id, g.group_name IS NOT NULL, g.raw_retention FROM batchwire.tags t "
        "LEFT JOIN batchwire.tag_group_of g USING (tag_id)").fetchall()
    return {tid: (keep if grouped else default) for tid, grouped, keep in rows}


def _policy(conn: psycopg.Connection, proc: str, key: str) -> tuple | None:
    """(interval,) of the hypertable's policy job ``proc``, None when there is none."""
    row = conn.execute(
        "SELECT (config->>%s)::interval FROM timescaledb_information.jobs "
        "WHERE proc_name = %s AND hypertable_schema = 'batchwire' AND hypertable_name = 'samples'",
        (key, proc)).fetchone()
    return None if row is None else (row[0],)


def apply_retention(conn: psycopg.Connection, now: datetime | None = None) -> RetentionReport:
    """Run the retention job once (commits). ``conn`` must not be in a transaction."""
    backend = installed_backend(conn)
    if backend is None:
        raise LookupError("no batchwire schema in this database: run `batchwire db migrate`")
    conn.commit()
    now = now or datetime.now(timezone.utc)
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            return RetentionReport(backend.value, None, skipped=True)
        plan = plan_retention(tag_retentions(conn), _interval_setting(conn, "raw_retention"))
        report = RetentionReport(backend.value, plan.horizon, tags_trimmed=len(plan.deletes))
        tags = sorted(plan.deletes)
        keeps = [plan.deletes[t] for t in tags]
        if backend is Backend.PLAIN:
            if plan.horizon is not None:
                report.dropped = [r[0] for r in conn.execute(
                    "SELECT * FROM batchwire.drop_partitions_before(%s)", (now - plan.horizon,))]
            if tags:
                # ts_min <= ts_max: the ts_min bound lets the (tag_id, ts_min) index find the rows
                report.deleted_rows = conn.execute(
                    "DELETE FROM batchwire.samples_packed p USING unnest(%s::int4[], %s::interval[]) AS k(tag_id, keep) "
                    "WHERE p.tag_id = k.tag_id AND p.ts_min < %s - k.keep AND p.ts_max < %s - k.keep",
                    (tags, keeps, now, now)).rowcount
        else:
            policy = _policy(conn, "policy_retention", "drop_after")
            if policy != (plan.horizon,):  # change the policy only when it differs (job ids stay)
                conn.execute("SELECT remove_retention_policy('batchwire.samples', if_exists => true)")
                if plan.horizon is not None:
                    conn.execute("SELECT add_retention_policy('batchwire.samples', drop_after => %s)", (plan.horizon,))
            if tags:
                report.deleted_rows = conn.execute(
                    "DELETE FROM batchwire.samples s USING unnest(%s::int4[], %s::interval[]) AS k(tag_id, keep) "
                    "WHERE s.tag_id = k.tag_id AND s.ts < %s - k.keep", (tags, keeps, now)).rowcount
            per_tag = [r[0] for r in conn.execute(
                "SELECT DISTINCT g.compress_after FROM batchwire.tags t LEFT JOIN batchwire.tag_group_of g USING (tag_id)")]
            report.compress_after = plan_compress_after(per_tag, _interval_setting(conn, "compress_after"))
            if _policy(conn, "policy_compression", "compress_after") != (report.compress_after,):
                conn.execute("SELECT remove_compression_policy('batchwire.samples', if_exists => true)")
                conn.execute("SELECT add_compression_policy('batchwire.samples', compress_after => %s)",
                             (report.compress_after,))
        return report
