"""Ingest benchmark: end-to-end MQTT ingest against raw binary COPY of the same rows.

    .venv/bin/python -m tests.bench.bench_ingest [--messages 2000] [--per-message 1000]
    BATCHWIRE_TEST_PG=postgresql://…timescaledb-server… .venv/bin/python -m tests.bench.bench_ingest

Figures, each printed as a ratio to a baseline measured in this run:
* end-to-end: edge-format data messages (``--per-message`` samples each, 100 tags, 1 Hz
  bioprocess-like signals) published at QoS 1 to the machine's Mosquitto by a separate
  publisher process that keeps at most ``--window`` messages unacknowledged end to end (as an
  edge does), ingested by one :class:`~historian.ingest.Ingestor`, counted when committed;
  baseline: binary COPY of the same rows, one row per sample, in 100k-row transactions,
  into a table with the ``(tag_id, ts)`` index (TimescaleDB: the hypertable itself; plain:
  a table shaped like the pre-0005 ``samples``, since plain ``samples`` is now a view over
  packed rows). Printed as that ratio (the issue's goal: >= 0.60) and as an absolute rate
  against the issue's 250,000 samples/s. Plain also prints the raw COPY of the packed rows
  (packing done beforehand) for reference.
* the hot path alone (decode -> rows -> pack -> COPY, no MQTT), against the same baseline.
* bytes per stored sample (table + index), against the 40 bytes/sample goal.
* a 1-hour-bucket aggregate over 30 days of 1 Hz data for one tag, from samples_1h vs raw.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from edge.contract import (
    BatchContext, BirthMessage, DataMessage, Sample, TagInfo, decode, encode, now_micros, topic,
)
from edge.contract.codec import decode_rows
from historian.ingest import Ingestor
from historian.ingest.classify import classify
from historian.ingest.mqtt import parse_broker_url
from historian.store import migrate, rollups
from historian.store.backend import Backend, installed_backend
from historian.store.packing import COPY_PACKED_SQL, Packer
from historian.store.rows import COPY_HEADER, COPY_TRAILER, from_us, sample_count
from historian.store.writer import COPY_SQL, COPY_TYPES, WriteBatch, Writer, open_pool
from tests.conftest import MQTT_URL, create_database, drop_database

SITE, EDGE = "bench", "gw"
N_TAGS = 100
CTX = {"c": BatchContext(SITE, "BR01", "B-1", "production", "R1")}


def signal(tag: int, i: int) -> float:
    """Bioprocess-like: slow drift, a daily-ish cycle, small sensor noise, quantised."""
    base = 20 + tag % 17
    return round(base + 2 * math.sin(i / 3600 + tag) + 0.05 * math.sin(i * 7.3 + tag * 1.1), 3)


def build_messages(n_messages: int, per_message: int, session: str) -> list[bytes]:
    per_tag = per_message // N_TAGS
    t0 = now_micros() - n_messages * per_tag * 1_000_000 - 60_000_000
    out = []
    for m in range(n_messages):
        samples = []
        for k in range(per_tag):
            i = m * per_tag + k
            ts = t0 + i * 1_000_000
            samples += [Sample(f"TAG{t:03d}", ts, signal(t, i), 0, "c") for t in range(N_TAGS)]
        out.append(encode(DataMessage(EDGE, SITE, session, m + 1, now_micros(), tuple(samples), CTX)))
    return out


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


GOAL_SAMPLES_PER_S = 250_000
ROWS_TABLE = "public.bench_rows"


def is_plain(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return installed_backend(conn) is Backend.PLAIN


def raw_table(dsn: str) -> str:
    return "batchwire.samples_packed" if is_plain(dsn) else "batchwire.samples"


def reset(dsn: str) -> None:
    table = raw_table(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {table}, batchwire.ingest_log, batchwire.samples_1m, "
                     "batchwire.samples_1h, batchwire.batches, batchwire.phases")
        if table.endswith("packed"):
            conn.execute("TRUNCATE batchwire.rollup_pending")
            conn.execute(f"DROP TABLE IF EXISTS {ROWS_TABLE}")
            conn.execute(f"CREATE TABLE {ROWS_TABLE} (tag_id int4 NOT NULL, ts timestamptz NOT NULL, "
                         "value float8, value_text text, quality int4 NOT NULL DEFAULT 0, context_id int4)")
            conn.execute(f"CREATE INDEX ON {ROWS_TABLE} (tag_id, ts)")
        conn.execute(f"VACUUM ANALYZE {table}")


def all_rows(payloads: list[bytes], tag_ids: dict[str, int]) -> list[tuple]:
    rows = []
    for p in payloads:
        for s in decode(p).samples:
            rows.append((tag_ids[s.tag], from_us(s.ts), s.value, None, s.quality, 1))
    return rows


def baseline_copy(dsn: str, rows: list[tuple], chunk: int = 100_000) -> float:
    sql = COPY_SQL.replace("batchwire.samples", ROWS_TABLE) if is_plain(dsn) else COPY_SQL

    def run():
        with psycopg.connect(dsn) as conn:
            for i in range(0, len(rows), chunk):
                with conn.cursor() as cur, cur.copy(sql) as copy:
                    copy.set_types(COPY_TYPES)
                    for r in rows[i:i + chunk]:
                        copy.write_row(r)
                conn.commit()
    return len(rows) / timed(run)


def packed_copy(dsn: str, payloads: list[bytes], tag_ids: dict[str, int], batch_samples: int = 10_000) -> float:
    """Plain: COPY of the packed rows alone (packed beforehand, batches as the writer's)."""
    datas, batch, n = [], Packer(), 0
    for p in payloads:
        m = decode_rows(p)
        batch.add(m.rows, tag_ids, {"c": 1})
        if batch.samples >= batch_samples:
            datas.append(batch.copy_data())
            n, batch = n + batch.samples, Packer()
    if batch.samples:
        datas.append(batch.copy_data())
        n += batch.samples

    def run():
        with psycopg.connect(dsn) as conn:
            for d in datas:
                with conn.cursor() as cur, cur.copy(COPY_PACKED_SQL) as copy:
                    copy.write(COPY_HEADER + d + COPY_TRAILER)
                conn.commit()
    return n / timed(run)


def hot_path(dsn: str, payloads: list[bytes], batch_samples: int = 10_000) -> float:
    """decode -> rows -> pack -> COPY (+ plain rollup queue) in one thread, batches as the
    Ingestor makes them, with the database's backend."""
    pool = open_pool(dsn)
    pool.open(wait=True)
    writer = Writer(pool, Backend.PLAIN if is_plain(dsn) else Backend.TIMESCALEDB, worker="hot")
    total = 0

    def run():
        nonlocal total
        batch, n = WriteBatch(), 0
        for p in payloads:
            item = classify(topic("data", SITE, EDGE), p, now_micros())
            batch.data.append(item)
            n += sample_count(item.msg)
            if n >= batch_samples:
                total += writer.write(batch).samples
                batch, n = WriteBatch(), 0
        if batch.data:
            total += writer.write(batch).samples
    rate = sum(len(decode(p).samples) for p in payloads) / timed(run)
    pool.close()
    return rate


def profile_parts(payloads: list[bytes], tag_ids: dict[str, int]) -> dict[str, float]:
    from historian.store.rows import message_rows

    """Samples/s of each part on one core, best of 3 (the first pass also pays warm-up)."""
    msgs = [decode_rows(p) for p in payloads[:200]]
    n = sum(len(m.rows) for m in msgs)
    t_decode = min(timed(lambda: [decode_rows(p) for p in payloads[:200]]) for _ in range(3))
    t_rows = min(timed(lambda: [message_rows(m, tag_ids, {"c": 1}, now_micros(), 3_600_000_000,
                                             with_buckets=True, tuples=False) for m in msgs]) for _ in range(3))

    def pack():
        for i in range(0, len(msgs), 10):
            pk = Packer()
            for m in msgs[i:i + 10]:
                pk.add(m.rows, tag_ids, {"c": 1})
            pk.copy_data()
    t_pack = min(timed(pack) for _ in range(3))
    return {"decode": n / t_decode, "rows": n / t_rows, "pack": n / t_pack}


# ---------------------------------------------------------------- publisher (own process)

def publisher_main(url: str, prefix: str, path: str, window: int) -> None:
    """Publish the payloads in ``path`` (length-prefixed) keeping <= window unacknowledged."""
    import paho.mqtt.client as mqtt

    data = open(path, "rb").read()
    payloads, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        payloads.append(data[i + 4:i + 4 + n])
        i += 4 + n
    acked: set[int] = set()
    cond = threading.Condition()
    ready = threading.Event()

    def on_message(client, userdata, message):
        ack = decode(message.payload)
        with cond:
            for a, b in ack.ranges:
                acked.update(range(a, b + 1))
            cond.notify_all()

    addr = parse_broker_url(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(window)
    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.on_connect = lambda cl, *a: cl.subscribe(topic("ack", SITE, EDGE, prefix), qos=1)
    c.connect(addr.host, addr.port)
    c.loop_start()
    ready.wait(10)
    print("go", flush=True)
    sys.stdin.readline()  # the parent says when to start
    t = time.perf_counter()
    for seq, p in enumerate(payloads, 1):
        with cond:
            cond.wait_for(lambda: seq - len(acked) <= window, timeout=60)
        c.publish(topic("data", SITE, EDGE, prefix), p, qos=1)
    with cond:
        ok = cond.wait_for(lambda: len(acked) >= len(payloads), timeout=300)
    print(f"done {time.perf_counter() - t:.6f} {int(ok)}", flush=True)
    c.disconnect()
    c.loop_stop()


def worker_main(dsn: str, url: str, prefix: str, receive_maximum: int) -> None:
    """One ingest worker process on the shared subscription, until stdin closes."""
    async def run():
        ing = Ingestor(dsn, url, topic_prefix=prefix, share_group="bench", receive_maximum=receive_maximum,
                       migrate_on_start=False)
        async with ing:
            assert await asyncio.to_thread(ing.wait_connected, 10)
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)
            print(f"errors {ing.status()['errors']}", flush=True)
    asyncio.run(run())


def end_to_end(dsn: str, payloads: list[bytes], window: int, receive_maximum: int,
               workers: int = 1) -> tuple[float, dict]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    path = f"/tmp/bench_ingest_{os.getpid()}.bin"
    with open(path, "wb") as f:
        for p in payloads:
            f.write(len(p).to_bytes(4, "big") + p)
    n_samples = sum(len(decode(p).samples) for p in payloads)

    if workers > 1:  # worker processes on a shared subscription, as scale-out runs them
        procs = [subprocess.Popen([sys.executable, "-m", "tests.bench.bench_ingest", "--worker", dsn, MQTT_URL,
                                   prefix, str(receive_maximum)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) for _ in range(workers)]
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        pub = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bench_ingest", "--publisher", MQTT_URL, prefix, path,
             str(window)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert pub.stdout.readline().strip() == "go"
        pub.stdin.write("\n")
        pub.stdin.flush()
        _, secs, ok = pub.stdout.readline().split()
        pub.wait()
        errors = 0
        for p in procs:
            out, _ = p.communicate("")
            errors += int(out.split()[-1])
        os.unlink(path)
        if ok != "1":
            raise SystemExit("end-to-end run did not complete: some messages were never acknowledged")
        return n_samples / float(secs), {"errors": errors, "quarantined": 0}

    async def run():
        ing = Ingestor(dsn, MQTT_URL, topic_prefix=prefix, receive_maximum=receive_maximum,
                       migrate_on_start=False)
        async with ing:
            assert await asyncio.to_thread(ing.wait_connected, 10)
            pub = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.bench_ingest", "--publisher", MQTT_URL, prefix, path,
                 str(window)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert pub.stdout.readline().strip() == "go"
            pub.stdin.write("\n")
            pub.stdin.flush()
            line = await asyncio.to_thread(pub.stdout.readline)
            pub.wait()
            _, secs, ok = line.split()
            if ok != "1":
                raise SystemExit("end-to-end run did not complete: some messages were never acknowledged")
            return float(secs), ing.status()
    secs, status = asyncio.run(run())
    os.unlink(path)
    return n_samples / secs, status


def storage(dsn: str) -> tuple[int, int]:
    table = raw_table(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")
        if table.endswith("packed"):
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                f"WHERE inhparent = '{table}'::regclass").fetchone()[0]
        else:
            size = conn.execute("SELECT hypertable_size('batchwire.samples')").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM batchwire.samples").fetchone()[0]
    return int(size), rows


def rollup_speed(dsn: str, days: int = 30) -> tuple[float, float]:
    """(raw seconds, rollup seconds) for 1-hour buckets of one tag over ``days`` of 1 Hz."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO batchwire.tags (name, datatype) VALUES ('LONG', 'float')")
        tid = conn.execute("SELECT tag_id FROM batchwire.tags WHERE name = 'LONG'").fetchone()[0]
        conn.execute("SELECT count(*) FROM batchwire.ensure_partitions("
                     "(now() AT TIME ZONE 'UTC')::date - %s, (now() AT TIME ZONE 'UTC')::date)", (days + 1,))
        start = now_micros() - days * 86_400_000_000
        start -= start % 3_600_000_000
        if is_plain(dsn):  # as ingest packs it: rows of 100 samples
            for d in range(0, days * 86_400, 86_400):
                pk = Packer()
                pk.add([("LONG", start + i * 1_000_000, signal(7, i), 0, None) for i in range(d, d + 86_400)],
                       {"LONG": tid}, {})
                with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_PACKED_SQL) as copy:
                    copy.write(COPY_HEADER + pk.copy_data() + COPY_TRAILER)
        else:
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for i in range(days * 86_400):
                    copy.write_row((tid, from_us(start + i * 1_000_000), signal(7, i), None, 0, None))
        if is_plain(dsn):
            with conn.transaction(), conn.cursor() as cur:
                keys = {(tid, start + m * 60_000_000) for m in range(days * 1440)}
                rollups.refresh(cur, keys)
        else:
            for name in ("samples_1m", "samples_1h"):
                conn.execute(f"CALL refresh_continuous_aggregate('batchwire.{name}', %s, %s)",
                             (from_us(start), from_us(start + days * 86_400_000_000)))
        conn.execute(f"VACUUM ANALYZE {raw_table(dsn)}")
        conn.execute("VACUUM ANALYZE batchwire.samples_1h")
        lo, hi = from_us(start), from_us(start + days * 86_400_000_000)
        raw_sql = ("SELECT date_trunc('hour', ts, 'UTC'), min(value), max(value), avg(value), count(*) "
                   "FROM batchwire.samples_between(%s, %s, %s) GROUP BY 1 ORDER BY 1")
        roll_sql = ("SELECT bucket, min, max, sum / count, count FROM batchwire.samples_1h "
                    "WHERE tag_id = %s AND bucket >= %s AND bucket < %s ORDER BY 1")
        raw_t = min(timed(lambda: conn.execute(raw_sql, (tid, lo, hi)).fetchall()) for _ in range(3))
        roll_t = min(timed(lambda: conn.execute(roll_sql, (tid, lo, hi)).fetchall()) for _ in range(3))
        a = conn.execute(raw_sql, (tid, lo, hi)).fetchall()
        b = conn.execute(roll_sql, (tid, lo, hi)).fetchall()
        assert [(r[0], r[4]) for r in a] == [(r[0], r[4]) for r in b], "rollup disagrees with raw"
    return raw_t, roll_t


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        publisher_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--per-message", type=int, default=1000)
    ap.add_argument("--window", type=int, default=200, help="edge's unacknowledged-message window")
    ap.add_argument("--receive-maximum", type=int, default=200)
    ap.add_argument("--rollup-days", type=int, default=30, help="0 skips the rollup figure")
    ap.add_argument("--workers", type=int, default=1,
                    help="end-to-end also with this many ingest worker processes on a shared subscription")
    ap.add_argument("--skip-hot", action="store_true", help="skip the hot-path figures (profiling end-to-end)")
    args = ap.parse_args()

    dsn = create_database("bwbench")
    try:
        migrate(dsn)
        pool = open_pool(dsn)
        pool.open(wait=True)
        Writer(pool, Backend.PLAIN).write(WriteBatch(births=[BirthMessage(
            EDGE, SITE, "S0", now_micros(), tuple(TagInfo(f"TAG{t:03d}", "float", "degC") for t in range(N_TAGS)))]))
        pool.close()
        with psycopg.connect(dsn) as conn:
            tag_ids = dict(conn.execute("SELECT name, tag_id FROM batchwire.tags").fetchall())
            conn.execute("INSERT INTO batchwire.contexts (site, unit) VALUES ('x', 'y')")
        print(f"building {args.messages} messages x {args.per_message} samples ...", flush=True)
        payloads = build_messages(args.messages, args.per_message, "S1")
        n = args.messages * args.per_message
        print(f"payload: {sum(map(len, payloads)) / n:.1f} bytes/sample on the wire")

        plain = is_plain(dsn)
        rows = all_rows(payloads, tag_ids)
        reset(dsn)
        base = baseline_copy(dsn, rows)
        del rows
        where = "a (tag_id, ts)-indexed row table" if plain else "the batchwire.samples hypertable"
        print(f"baseline  raw binary COPY, one row per sample, into {where}: {base:,.0f} rows/s")
        if plain:
            reset(dsn)
            packed = packed_copy(dsn, payloads, tag_ids)
            print(f"reference raw binary COPY of the same samples already packed (samples_packed): "
                  f"{packed:,.0f} samples/s = {packed / base:.2f} x baseline")

        def figure(rate: float) -> str:
            return (f"{rate:,.0f} samples/s = {rate / base:.2f} x baseline (goal >= 0.60) "
                    f"= {rate / GOAL_SAMPLES_PER_S:.2f} x the 250,000 samples/s goal")

        parts = profile_parts(payloads, tag_ids) if not args.skip_hot else {"decode": 0, "rows": 0, "pack": 0}
        print(f"hot path parts (one core): decode_rows {parts['decode']:,.0f} samples/s, "
              f"rows {parts['rows']:,.0f} samples/s, pack {parts['pack']:,.0f} samples/s")
        if not args.skip_hot:
            reset(dsn)
            hot = hot_path(dsn, payloads)
            print(f"hot path  decode->rows->{'pack->' if plain else ''}COPY{'+rollup queue' if plain else ''}, "
                  f"no MQTT: {figure(hot)}")

        reset(dsn)
        e2e, status = end_to_end(dsn, payloads, args.window, args.receive_maximum)
        print(f"end-to-end  QoS 1 via Mosquitto -> Ingestor -> committed (window {args.window}, receive maximum "
              f"{args.receive_maximum}): {figure(e2e)}; errors {status['errors']}, quarantined {status['quarantined']}")
        if args.workers > 1:
            reset(dsn)
            multi, st = end_to_end(dsn, payloads, args.window, args.receive_maximum, args.workers)
            print(f"end-to-end  same with {args.workers} worker processes (shared subscription): {figure(multi)}; "
                  f"errors {st['errors']}")
        size, stored = storage(dsn)
        assert stored == n, f"stored {stored} of {n} samples"
        print(f"storage   {size / stored:.1f} bytes/sample incl. index "
              f"= {size / stored / 40:.2f} x the 40 bytes/sample goal")
        if args.rollup_days:
            raw_t, roll_t = rollup_speed(dsn, args.rollup_days)
            print(f"rollups   1-h buckets, {args.rollup_days} days of 1 Hz, one tag: raw {raw_t * 1000:.1f} ms, "
                  f"samples_1h {roll_t * 1000:.2f} ms = {raw_t / roll_t:.0f} x faster (goal >= 10)")
    finally:
        drop_database(dsn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
