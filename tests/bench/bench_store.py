"""Storage benchmark: bytes per stored sample for realistic simulated bioprocess signals.

    .venv/bin/python -m tests.bench.bench_store [--tags 60] [--hours 24]
    BATCHWIRE_TEST_PG=postgresql://…timescaledb-server… .venv/bin/python -m tests.bench.bench_store

Signals (1 Hz, ``--tags`` tags cycling through the kinds a bioreactor suite publishes):
controlled temperatures and pH with controller ripple and sensor noise, dissolved oxygen
and flows read as OPC UA float32, weights rising with the feed, pressures, agitation
setpoints, valve states, and Modbus registers scaled to fixed decimals (int16 × 0.01).
Values carry measurement noise at the sensors' stated resolution: not random noise, not
flat lines.

Figures, each a ratio to a baseline from the same run:
* bytes/sample of ``batchwire.samples`` as stored (table + indexes; on TimescaleDB after
  compressing every chunk), against the goal (2 bytes on TimescaleDB, 40 on plain) and
  against the same rows uncompressed (TimescaleDB) / the wire format.
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
from historian.store.rows import from_us
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


def load(dsn: str, tags: int, hours: int) -> int:
    kinds = signal_kinds()
    seconds = hours * 3600
    t0 = now_micros() - (hours + 24 * 3) * HOUR_US  # old enough for the compression policy window
    t0 -= t0 % 1_000_000
    with psycopg.connect(dsn) as conn:
        ids = []
        for t in range(tags):
            name, _ = kinds[t % len(kinds)]
            ids.append(conn.execute("INSERT INTO batchwire.tags (name, datatype) VALUES (%s, 'float') "
                                    "RETURNING tag_id", (f"BR{t // len(kinds):02d}.{name}",)).fetchone()[0])
        ctx = conn.execute("INSERT INTO batchwire.contexts (site, unit, batch, phase) VALUES "
                           "('s', 'BR01', 'B-1', 'production') RETURNING context_id").fetchone()[0]
        conn.commit()
        n = 0
        chunk = 600  # seconds per COPY
        rngs = [random.Random(t) for t in range(tags)]
        states = [{} for _ in range(tags)]
        for start in range(0, seconds, chunk):
            with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for i in range(start, min(start + chunk, seconds)):
                    ts = from_us(t0 + i * 1_000_000)
                    for t in range(tags):
                        fn = kinds[t % len(kinds)][1]
                        copy.write_row((ids[t], ts, fn(i, rngs[t], states[t]), None, 0, ctx))
                        n += 1
            conn.commit()
    return n


def size_of_samples(conn, backend: str) -> int:
    if backend == "timescaledb":
        return int(conn.execute("SELECT hypertable_size('batchwire.samples')").fetchone()[0])
    return int(conn.execute("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                            "WHERE inhparent = 'batchwire.samples'::regclass").fetchone()[0])


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=64)
    ap.add_argument("--hours", type=int, default=24)
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
        print(f"backend {backend} on {PG_ADMIN_DSN.rsplit('@', 1)[-1]}; loading {args.tags} tags x "
              f"{args.hours} h at 1 Hz ...", flush=True)
        t = time.perf_counter()
        n = load(dsn, args.tags, args.hours)
        print(f"loaded {n:,} samples in {time.perf_counter() - t:.1f} s")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE batchwire.samples")
            raw = size_of_samples(conn, backend)
            print(f"uncompressed  {raw / n:.1f} bytes/sample (table + (tag_id, ts) index)")
            if backend == "timescaledb":
                t = time.perf_counter()
                chunks = conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('batchwire.samples') c"
                                      ).fetchone()[0]
                conn.execute("VACUUM ANALYZE batchwire.samples")
                comp = size_of_samples(conn, backend)
                print(f"compressed {chunks} chunk(s) in {time.perf_counter() - t:.1f} s")
                print(f"compressed    {comp / n:.2f} bytes/sample = {comp / n / 2:.2f} x the 2 bytes/sample goal, "
                      f"{raw / comp:.1f} x smaller than uncompressed")
                per_kind(conn)
            else:
                print(f"plain         {raw / n:.1f} bytes/sample = {raw / n / 40:.2f} x the 40 bytes/sample goal")
    finally:
        drop_database(dsn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
