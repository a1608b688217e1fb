"""Storage benchmark: bytes per stored sample for realistic simulated bioprocess signals.

    .venv/bin/python -m tests.bench.bench_store [--tags 64] [--hours 24] [--batch-samples 10000]
    BATCHWIRE_TEST_PG=postgresql://…timescaledb-server… .venv/bin/python -m tests.bench.bench_store
    .venv/bin/python -m tests.bench.bench_store --query [--query-tags 100] [--query-days 7]

Signals (1 Hz, ``--tags`` tags cycling through the kinds a bioreactor suite publishes):
controlled temperatures and pH with controller ripple and sensor noise, dissolved oxygen
and flows read as OPC UA float32, weights rising with the feed, pressures, agitation
setpoints, valve states, and Modbus registers scaled to fixed decimals (int16 × 0.01).
Values carry measurement noise at the sensors' stated resolution: not random noise, not
flat lines.

Figures, each a ratio to a baseline from the same run:
* bytes/sample of ``batchwire.samples`` as stored (table + indexes; on TimescaleDB after
  compressing every chunk), against the goal (2 bytes on TimescaleDB, 40 on plain) and
  against the same rows uncompressed (TimescaleDB) / in the one-row-per-sample layout
  (plain: the same rows COPYed into a table shaped like the pre-0005 ``samples``, with its
  ``(tag_id, ts)`` index). On plain PostgreSQL the samples are written as the ingest
  writer packs them: ``--batch-samples`` per write batch, grouped per (tag, hour); 3600 ×
  tags gives full-hour rows, the state :func:`historian.store.packing.repack` leaves at
  low rates.
* ``--query`` (plain): the recorded query (``historian.query.recorded``) of 1 h of one tag
  out of ``--query-tags`` tags × ``--query-days`` days at 1 Hz, packed (rows of 100 samples,
  as ingest writes 10k-sample batches of 100 tags) against the row layout, median of 40
  random hours each.
"""

from __future__ import annotations

import argparse
import math
import random
import struct
import sys
import time

import psycopg

from edge.contract import now_micros
from historian.store import migrate
from historian.store.backend import installed_backend
from historian.store.packing import COPY_PACKED_SQL, Packer
from historian.store.rows import COPY_HEADER, COPY_TRAILER, from_us
from historian.store.writer import COPY_SQL, COPY_TYPES
from tests.conftest import PG_ADMIN_DSN, create_database, drop_database

HOUR_US = 3_600_000_000


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def signal_kinds():
    """(name, function(i, rng, state) -> value) for each kind of signal."""
    def temp(i, rng, st):  # PID-held 37.0 degC, slow ripple, RTD noise, int16 x 0.01
        return round(37.0 + 0.05 * math.sin(i / 600) + rng.gauss(0, 0.02), 2)

    def ph(i, rng, st):  # drifts down with lactate, base addition pulls back; 0.001 resolution
        return round(7.0 - 0.1 * ((i / 7200) % 1) + rng.gauss(0, 0.003), 3)

    def do(i, rng, st):  # dissolved oxygen %, cascade control, float32 over OPC UA
        return _f32(40 + 3 * math.sin(i / 300) + rng.gauss(0, 0.3))

    def weight(i, rng, st):  # kg, rises with the feed, float32
        return _f32(2.0 + i * 2e-5 + rng.gauss(0, 0.002))

    def pressure(i, rng, st):  # mbar headspace, float32
        return _f32(1013 + 20 + rng.gauss(0, 2.0))

    def rpm(i, rng, st):  # agitation setpoint: steps a few times a day
        return float(120 + 20 * (i // 20_000))

    def valve(i, rng, st):  # on/off, switches now and then
        if rng.random() < 0.002:
            st["v"] = 1.0 - st.get("v", 0.0)
        return st.get("v", 0.0)

    def flow(i, rng, st):  # gas flow L/min, mass flow controller, float32
        return _f32(0.5 + 0.001 * rng.gauss(0, 1))

    return [("TEMP", temp), ("PH", ph), ("DO", do), ("WEIGHT", weight), ("PRES", pressure),
            ("RPM", rpm), ("VALVE", valve), ("FLOW", flow)]


ROWS_TABLE = "public.bench_rows"
ROWS_COPY_SQL = COPY_SQL.replace("batchwire.samples", ROWS_TABLE)


def load(dsn: str, tags: int, hours: int, backend: str, batch_samples: int) -> int:
    """Write the signals. TimescaleDB: binary COPY of rows into the hypertable. Plain: the
    writer's packing (per write batch of ``batch_samples``, grouped per tag and hour) into
    samples_packed, and the same rows into the row-layout table ``bench_rows``."""
    kinds = signal_kinds()
    seconds = hours * 3600
    t0 = now_micros() - (hours + 24 * 3) * HOUR_US  # old enough for the compression policy window
    t0 -= t0 % HOUR_US
    with psycopg.connect(dsn) as conn:
        ids = []
        for t in range(tags):
            name, _ = kinds[t % len(kinds)]
            ids.append(conn.execute("INSERT INTO batchwire.tags (name, datatype) VALUES (%s, 'float') "
                                    "RETURNING tag_id", (f"BR{t // len(kinds):02d}.{name}",)).fetchone()[0])
        ctx = conn.execute("INSERT INTO batchwire.contexts (site, unit, batch, phase) VALUES "
                           "('s', 'BR01', 'B-1', 'production') RETURNING context_id").fetchone()[0]
        if backend == "plain":
            conn.execute(f"CREATE TABLE {ROWS_TABLE} (tag_id int4 NOT NULL, ts timestamptz NOT NULL, value float8, "
                         "value_text text, quality int4 NOT NULL DEFAULT 0, context_id int4)")
            conn.execute(f"CREATE INDEX ON {ROWS_TABLE} (tag_id, ts)")
        conn.commit()
        n = 0
        chunk = max(1, batch_samples // tags) if backend == "plain" else 600  # seconds per COPY
        rngs = [random.Random(t) for t in range(tags)]
        states = [{} for _ in range(tags)]
        tag_map = {str(i): i for i in ids}
        for start in range(0, seconds, chunk):
            rows = []
            for i in range(start, min(start + chunk, seconds)):
                ts = t0 + i * 1_000_000
                for t in range(tags):
                    fn = kinds[t % len(kinds)][1]
                    rows.append((ids[t], ts, fn(i, rngs[t], states[t])))
            n += len(rows)
            with conn.cursor() as cur:
                if backend == "plain":
                    packer = Packer()
                    packer.add(((str(tid), ts, v, 0, "c") for tid, ts, v in rows), tag_map, {"c": ctx})
                    with cur.copy(COPY_PACKED_SQL) as copy:
                        copy.write(COPY_HEADER + packer.copy_data() + COPY_TRAILER)
                    target = ROWS_COPY_SQL
                else:
                    target = COPY_SQL
                with cur.copy(target) as copy:
                    copy.set_types(COPY_TYPES)
                    for tid, ts, v in rows:
                        copy.write_row((tid, from_us(ts), v, None, 0, ctx))
            conn.commit()
    return n


def size_of_samples(conn, backend: str) -> int:
    if backend == "timescaledb":
        return int(conn.execute("SELECT hypertable_size('batchwire.samples')").fetchone()[0])
    return int(conn.execute("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                            "WHERE inhparent = 'batchwire.samples_packed'::regclass").fetchone()[0])


def per_kind(conn) -> None:
    """Compressed bytes of the value column per sample, by signal kind: where the bytes go."""
    tables = [r[0] for r in conn.execute(
        "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = '_timescaledb_internal'::regnamespace "
        "AND relkind = 'r' AND relname LIKE '%\\_compressed'")]
    if not tables:
        return
    union = " UNION ALL ".join(f"SELECT tag_id, value, ts, _ts_meta_count FROM {t}" for t in tables)
    rows = conn.execute(
        f"SELECT split_part(g.name, '.', 2), sum(pg_column_size(x.value))::float8 / sum(x._ts_meta_count), "
        f"sum(pg_column_size(x.ts))::float8 / sum(x._ts_meta_count) "
        f"FROM ({union}) x JOIN batchwire.tags g USING (tag_id) GROUP BY 1 ORDER BY 2").fetchall()
    print("  value column by signal kind (bytes/sample): "
          + ", ".join(f"{k} {v:.2f}" for k, v, _ in rows)
          + f"; ts column {max(r[2] for r in rows):.3f} at most")


def query_bench(dsn: str, tags: int, days: int, runs: int = 40) -> None:
    """Recorded query of 1 h of one tag, packed layout vs row layout, same data."""
    from historian.query.recorded import build_recorded
    from historian.query.timeparse import TimeRange

    hours = days * 24
    t0 = (now_micros() - hours * HOUR_US) // HOUR_US * HOUR_US
    per_row = 100  # samples per packed row: a 10k-sample write batch of `tags` = 100 tags
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM batchwire.ensure_partitions("
                     "(now() AT TIME ZONE 'UTC')::date - %s, (now() AT TIME ZONE 'UTC')::date)", (days + 1,))
        conn.execute(f"CREATE TABLE {ROWS_TABLE} (tag_id int4 NOT NULL, ts timestamptz NOT NULL, value float8, "
                     "value_text text, quality int4 NOT NULL DEFAULT 0, context_id int4)")
        t = time.perf_counter()
        # server-side generation: sin + a deterministic wobble, 1 Hz
        conn.execute(
            "INSERT INTO batchwire.samples_packed (tag_id, n, ts_min, ts_max, context_id, ts, value) "
            "SELECT g, %(per)s, to_timestamp(%(t0)s / 1e6) + c * %(per)s * INTERVAL '1 second', "
            "       to_timestamp(%(t0)s / 1e6) + (c * %(per)s + %(per)s - 1) * INTERVAL '1 second', 1, "
            "       ARRAY(SELECT to_timestamp(%(t0)s / 1e6) + (c * %(per)s + i) * INTERVAL '1 second' "
            "             FROM generate_series(0, %(per)s - 1) i), "
            "       ARRAY(SELECT round((20 + g %% 17 + 2 * sin((c * %(per)s + i) / 3600.0 + g))::numeric, 3)::float8 "
            "             FROM generate_series(0, %(per)s - 1) i) "
            "FROM generate_series(1, %(tags)s) g, generate_series(0, %(hours)s * 3600 / %(per)s - 1) c",
            {"per": per_row, "t0": t0, "tags": tags, "hours": hours})
        conn.execute("VACUUM ANALYZE batchwire.samples_packed")
        packed_load = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(f"INSERT INTO {ROWS_TABLE} SELECT tag_id, ts, value, value_text, quality, context_id "
                     "FROM batchwire.samples ORDER BY ts, tag_id")
        conn.execute(f"CREATE INDEX ON {ROWS_TABLE} (tag_id, ts)")
        conn.execute(f"VACUUM ANALYZE {ROWS_TABLE}")
        rows_load = time.perf_counter() - t
        n = conn.execute(f"SELECT count(*) FROM {ROWS_TABLE}").fetchone()[0]
        print(f"{n:,} samples ({tags} tags x {days} days at 1 Hz); generated packed in {packed_load:.0f} s, "
              f"copied to the row layout + index in {rows_load:.0f} s")
        packed_bytes = size_of_samples(conn, "plain")
        rows_bytes = conn.execute(f"SELECT pg_total_relation_size('{ROWS_TABLE}')").fetchone()[0]
        print(f"  bytes/sample: packed {packed_bytes / n:.1f}, rows {rows_bytes / n:.1f}")
        rng = random.Random(1)
        picks = [(rng.randrange(1, tags + 1), t0 + rng.randrange(1, hours - 1) * HOUR_US + rng.randrange(3600) * 1_000_000)
                 for _ in range(runs)]
        row_sql = ("SELECT s.ts, s.value, s.value_text, s.quality, c.site, c.unit, c.batch, c.phase, c.recipe "
                   f"FROM {ROWS_TABLE} s LEFT JOIN batchwire.contexts c ON c.context_id = s.context_id "
                   "WHERE s.tag_id = %(tag_id)s AND s.ts >= %(start)s AND s.ts < %(end)s "
                   "ORDER BY s.ts LIMIT %(limit_plus_one)s")
        times = {"packed": [], "rows": []}
        for tag, start in picks:
            begin = from_us(start)
            sql, params = build_recorded(tag, TimeRange(begin, from_us(start + HOUR_US)), 100_000)
            for name, q in (("packed", sql), ("rows", row_sql)):
                t = time.perf_counter()
                got = conn.execute(q, params).fetchall()
                times[name].append(time.perf_counter() - t)
                assert len(got) == 3600, (name, len(got))
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
        med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
        print(f"recorded query, 1 h of one tag (3600 samples), median of {runs}: "
              f"packed {med['packed']:.1f} ms, rows {med['rows']:.1f} ms = {med['packed'] / med['rows']:.2f} x the row layout")
        print("  plan (packed): " + " | ".join(line.strip() for line in plan.splitlines() if "Index" in line or "Cond" in line))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=64)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--batch-samples", type=int, default=10_000,
                    help="plain: samples per write batch (3600 x tags = full-hour rows, as after repacking)")
    ap.add_argument("--query", action="store_true", help="plain: recorded-query timing, packed vs row layout")
    ap.add_argument("--query-tags", type=int, default=100)
    ap.add_argument("--query-days", type=int, default=7)
    args = ap.parse_args()
    dsn = create_database("bwstore")
    try:
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            backend = installed_backend(conn).value
            if backend == "plain":
                conn.execute("SELECT count(*) FROM batchwire.ensure_partitions("
                             "(now() AT TIME ZONE 'UTC')::date - %s, (now() AT TIME ZONE 'UTC')::date)",
                             (args.hours // 24 + 6,))
        if args.query:
            if backend != "plain":
                print("--query compares the plain backend's layouts; this server migrated to TimescaleDB")
                return 2
            query_bench(dsn, args.query_tags, args.query_days)
            return 0
        print(f"backend {backend} on {PG_ADMIN_DSN.rsplit('@', 1)[-1]}; loading {args.tags} tags x "
              f"{args.hours} h at 1 Hz ...", flush=True)
        t = time.perf_counter()
        n = load(dsn, args.tags, args.hours, backend, args.batch_samples)
        print(f"loaded {n:,} samples in {time.perf_counter() - t:.1f} s")
        with psycopg.connect(dsn, autocommit=True) as conn:
            if backend == "plain":
                conn.execute("VACUUM ANALYZE batchwire.samples_packed")
                conn.execute(f"VACUUM ANALYZE {ROWS_TABLE}")
                packed = size_of_samples(conn, backend)
                rows = conn.execute(f"SELECT pg_total_relation_size('{ROWS_TABLE}')").fetchone()[0]
                nrows, per = conn.execute("SELECT count(*), avg(n) FROM batchwire.samples_packed").fetchone()
                print(f"row layout    {rows / n:.1f} bytes/sample (table + (tag_id, ts) index; baseline)")
                print(f"packed        {packed / n:.1f} bytes/sample = {packed / n / 40:.2f} x the 40 bytes/sample goal, "
                      f"{packed / rows:.2f} x the row layout ({nrows:,} rows of {float(per):.0f} samples, "
                      f"{args.batch_samples:,} samples per write batch)")
                return 0
            conn.execute("VACUUM ANALYZE batchwire.samples")
            raw = size_of_samples(conn, backend)
            print(f"uncompressed  {raw / n:.1f} bytes/sample (table + (tag_id, ts) index)")
            t = time.perf_counter()
            chunks = conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('batchwire.samples') c"
                                  ).fetchone()[0]
            conn.execute("VACUUM ANALYZE batchwire.samples")
            comp = size_of_samples(conn, backend)
            print(f"compressed {chunks} chunk(s) in {time.perf_counter() - t:.1f} s")
            print(f"compressed    {comp / n:.2f} bytes/sample = {comp / n / 2:.2f} x the 2 bytes/sample goal, "
                  f"{raw / comp:.1f} x smaller than uncompressed")
            per_kind(conn)
    finally:
        drop_database(dsn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
