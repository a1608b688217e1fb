"""Freshness benchmark: time from publish to visible in a query, at a steady ingest rate.

    .venv/bin/python -m tests.bench.bench_fresh [--rate 50000] [--per-message 500] [--seconds 20]

A publisher process sends edge-format data messages at QoS 1 to the machine's Mosquitto,
paced to ``--rate`` samples/s, and records the wall-clock publish time of each message.
One :class:`~historian.ingest.Ingestor` (default settings: batches close after 0.1 s or
10k samples) commits them. A reader polls PostgreSQL every 5 ms for newly visible
messages (``ingest_log`` rows commit in the same transaction as their samples, so a
message visible there is visible to any samples query); latency = first poll that sees
it - publish time (the poll interval adds at most 5 ms).

Figures, as ratios to baselines from the same run:
* p50/p99/max publish->visible, against the 1 s goal;
* against a raw round trip: COPY one message's rows + COMMIT + a query that sees them,
  measured on the same database just before (p99 over as many messages).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from edge.contract import BirthMessage, DataMessage, Sample, TagInfo, encode, now_micros, topic
from historian.ingest import Ingestor
from historian.ingest.mqtt import parse_broker_url
from historian.store import migrate
from historian.store.backend import Backend, installed_backend
from historian.store.packing import COPY_PACKED_SQL, Packer
from historian.store.rows import COPY_HEADER, COPY_TRAILER, from_us
from historian.store.writer import COPY_SQL, COPY_TYPES, WriteBatch, Writer, open_pool
from tests.bench.bench_ingest import CTX, EDGE, N_TAGS, SITE, signal
from tests.conftest import MQTT_URL, create_database, drop_database


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def publisher_main(url: str, prefix: str, rate: int, per_message: int, seconds: float) -> None:
    """Publish paced data messages; print "seq publish_time" per message at the end."""
    import paho.mqtt.client as mqtt

    addr = parse_broker_url(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fresh-pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect(addr.host, addr.port)
    c.loop_start()
    print("go", flush=True)
    sys.stdin.readline()
    per_tag = max(1, per_message // N_TAGS)
    interval = per_message / rate
    n = int(seconds / interval)
    sent = []
    start = time.perf_counter()
    for seq in range(1, n + 1):
        due = start + (seq - 1) * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ts0 = now_micros()
        samples = tuple(Sample(f"TAG{t:03d}", ts0 + k * 1000, signal(t, seq * per_tag + k), 0, "c")
                        for k in range(per_tag) for t in range(N_TAGS))
        payload = encode(DataMessage(EDGE, SITE, "F1", seq, ts0, samples, CTX))
        t_pub = time.time()
        c.publish(topic("data", SITE, EDGE, prefix), payload, qos=1)
        sent.append((seq, t_pub))
    behind = time.perf_counter() - (start + n * interval)
    for seq, t in sent:
        print(seq, f"{t:.6f}")
    print(f"end {behind:.3f}", flush=True)
    c.disconnect()
    c.loop_stop()


def raw_round_trip(dsn: str, per_message: int, n: int) -> list[float]:
    """COPY one message's rows (plain: packed, as the writer stores them) + COMMIT + a query
    that sees them, n times (seconds each)."""
    out = []
    with psycopg.connect(dsn) as conn, psycopg.connect(dsn, autocommit=True) as reader:
        plain = installed_backend(conn) is Backend.PLAIN
        tid = conn.execute("SELECT min(tag_id) FROM batchwire.tags").fetchone()[0]
        for i in range(n):
            ts0 = now_micros()
            t = time.perf_counter()
            with conn.cursor() as cur:
                if plain:
                    pk = Packer()
                    pk.add([("t", ts0 + k, 1.0, 0, None) for k in range(per_message)], {"t": tid}, {})
                    with cur.copy(COPY_PACKED_SQL) as copy:
                        copy.write(COPY_HEADER + pk.copy_data() + COPY_TRAILER)
                else:
                    with cur.copy(COPY_SQL) as copy:
                        copy.set_types(COPY_TYPES)
                        for k in range(per_message):
                            copy.write_row((tid, from_us(ts0 + k), 1.0, None, 0, None))
            conn.commit()
            seen = reader.execute("SELECT count(*) FROM batchwire.samples_between(%s, %s, 'infinity')",
                                  (tid, from_us(ts0))).fetchone()[0]
            out.append(time.perf_counter() - t)
            assert seen >= per_message
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        publisher_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=50_000, help="samples/s")
    ap.add_argument("--per-message", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    dsn = create_database("bwfresh")
    prefix = f"fresh-{uuid.uuid4().hex[:8]}"
    try:
        migrate(dsn)
        pool = open_pool(dsn)
        pool.open(wait=True)
        Writer(pool, Backend.PLAIN).write(WriteBatch(births=[BirthMessage(
            EDGE, SITE, "S0", now_micros(), tuple(TagInfo(f"TAG{t:03d}", "float", "degC") for t in range(N_TAGS)))]))
        pool.close()
        base = raw_round_trip(dsn, args.per_message, 200)
        base_p99 = percentile(base, 99)
        print(f"baseline  raw COPY {args.per_message} rows + COMMIT + query: p50 {percentile(base, 50) * 1000:.1f} ms, "
              f"p99 {base_p99 * 1000:.1f} ms")

        visible: dict[int, float] = {}
        stop = threading.Event()

        def poll():
            last = 0
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    rows = conn.execute("SELECT seq FROM batchwire.ingest_log WHERE session = 'F1' AND seq > %s",
                                        (last,)).fetchall()
                    now = time.time()
                    for (seq,) in rows:
                        visible.setdefault(seq, now)
                    if rows:
                        last = max(last, min(s for (s,) in rows) - 1)  # seqs may commit out of order
                        while last + 1 in visible:
                            last += 1
                    time.sleep(0.005)

        async def run():
            async with Ingestor(dsn, MQTT_URL, topic_prefix=prefix, migrate_on_start=False) as ing:
                assert await asyncio.to_thread(ing.wait_connected, 10)
                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                pub = subprocess.Popen(
                    [sys.executable, "-m", "tests.bench.bench_fresh", "--publisher", MQTT_URL, prefix,
                     str(args.rate), str(args.per_message), str(args.seconds)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                assert pub.stdout.readline().strip() == "go"
                pub.stdin.write("\n")
                pub.stdin.flush()
                out, _ = await asyncio.to_thread(pub.communicate)
                lines = out.split("\n")
                sent = {int(a): float(b) for a, b in (ln.split() for ln in lines if ln and not ln.startswith("end"))}
                behind = float([ln for ln in lines if ln.startswith("end")][0].split()[1])
                deadline = time.monotonic() + 30
                while len(visible) < len(sent) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                stop.set()
                poller.join()
                return sent, behind, ing.status()

        sent, behind, status = asyncio.run(run())
        lat = [visible[s] - t for s, t in sent.items() if s in visible]
        missing = len(sent) - len(lat)
        p50, p99, worst = percentile(lat, 50), percentile(lat, 99), max(lat)
        achieved = len(sent) * args.per_message / (args.seconds + max(0.0, behind))
        print(f"load      {len(sent)} messages x {args.per_message} samples at {achieved:,.0f} samples/s "
              f"(target {args.rate:,}; publisher ended {behind:.2f} s behind schedule); not visible: {missing}; "
              f"ingest errors {status['errors']}")
        print(f"freshness publish->visible p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms")
        print(f"freshness p99 = {p99 / 1.0:.2f} x the 1 s goal; = {p99 / base_p99:.1f} x the raw round trip p99")
    finally:
        drop_database(dsn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
