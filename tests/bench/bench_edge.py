"""Edge agent benchmarks. Each figure is printed with a baseline measured in the same run and
their ratio, so results compare across machines.

    .venv/bin/python -m tests.bench.bench_edge [--mqtt mqtt://127.0.0.1:1883] [--samples 200000]

1. outbox: group commit (one transaction per 50 messages of 100 samples) vs one commit per
   message, both WAL + synchronous=FULL: durable samples/s.
2. replay marking: flipping ``historical`` in place vs decode + re-encode.
3. agent end to end: readings injected into a running agent until the broker has PUBACKed
   all of them, vs a bare paho QoS 1 publisher sending the same number of equally sized
   messages (no durability, no batching work).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from edge.batcher import SealedBatch
from edge.contract.codec import decode, encode
from edge.contract.messages import BatchContext, DataMessage, Sample, now_micros
from edge.delivery import as_historical
from edge.outbox import Outbox
from edge.reading import Reading


def ratio_line(name: str, value: float, base: float, unit: str) -> None:
    print(f"{name:<44} {value:>12,.0f} {unit}  baseline {base:>12,.0f} {unit}  ratio {value / base:6.2f}")


def make_batch(n: int, t0: int) -> SealedBatch:
    ctx = {"c0": BatchContext("site-a", "BR01", "B-17", "growth", "CHO")}
    return SealedBatch(tuple(Sample(f"BR01.T{i % 20}", t0 + i, 36.5 + i * 1e-3, 0, "c0") for i in range(n)), ctx)


def bench_outbox(total: int) -> None:
    per_msg, group = 100, 50
    batches = [make_batch(per_msg, 10**15 + i * per_msg) for i in range(total // per_msg)]
    with tempfile.TemporaryDirectory() as d:
        box = Outbox.open(Path(d) / "a", edge="b", site="s", max_bytes=10**12)
        t = time.perf_counter()
        for i in range(0, len(batches), group):
            box.append(batches[i:i + group])
        grouped = total / (time.perf_counter() - t)
        box.close()
        box = Outbox.open(Path(d) / "b", edge="b", site="s", max_bytes=10**12)
        t = time.perf_counter()
        for b in batches:
            box.append([b])
        single = total / (time.perf_counter() - t)
        box.close()
    ratio_line("outbox group commit (50 msgs of 100 samples)", grouped, single, "samples/s")


def bench_historical(n: int = 2000) -> None:
    payload = encode(DataMessage(edge="e", site="s", session="S", seq=1, sent=1,
                                 samples=make_batch(1000, 10**15).samples, contexts=make_batch(1, 0).contexts))
    t = time.perf_counter()
    for _ in range(n):
        as_historical(payload)
    fast = n / (time.perf_counter() - t)
    m = max(n // 20, 10)
    t = time.perf_counter()
    for _ in range(m):
        encode(replace(decode(payload), historical=True))
    slow = m / (time.perf_counter() - t)
    ratio_line("replay marking (1000-sample message)", fast, slow, "msgs/s")


async def bench_agent(mqtt_url: str, total: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.agent import EdgeAgent
    from edge.config import parse_config

    prefix = f"bwbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as d:
        cfg = parse_config({"edge": {"id": "bench", "site": "s", "data_dir": d},
                            "mqtt": {"url": mqtt_url, "topic_prefix": prefix, "client_id": prefix,
                                     "max_batch_delay": 0.05, "max_samples_per_message": 1000},
                            # the producer here outruns any disk: measure throughput, drop nothing
                            "outbox": {"max_memory_samples": max(total, 1000)}})
        async with EdgeAgent(cfg, sources=[]) as agent:
            while not agent.stats()["connected"]:
                await asyncio.sleep(0.01)
            t0 = now_micros()
            start = time.perf_counter()
            for i in range(total):
                agent.reading(Reading(f"T{i % 50}", t0 + i, float(i), 0, None))
                if i % 5000 == 0:
                    await asyncio.sleep(0)  # let capture and delivery run, as sources would
            while True:
                st = agent.stats()
                if st["captured"] == total and st["published"] == st["next_seq"] - 1:
                    break
                await asyncio.sleep(0.005)
            agent_rate = total / (time.perf_counter() - start)
            size = agent.outbox.bytes // max(agent.outbox.count, 1)
            n_msgs = agent.stats()["next_seq"] - 1

    u = urlsplit(mqtt_url)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=prefix + "-raw")
    c.connect(u.hostname, u.port or 1883)
    c.loop_start()
    payload = b"x" * size
    start = time.perf_counter()
    infos = []
    for _ in range(n_msgs):
        infos.append(c.publish(f"{prefix}/raw", payload, qos=1))
        if len(infos) >= 32:
            infos.pop(0).wait_for_publish(10)
    for i in infos:
        i.wait_for_publish(10)
    raw_rate = total / (time.perf_counter() - start)
    c.loop_stop()
    c.disconnect()
    ratio_line("agent end to end (durable, batched, QoS 1)", agent_rate, raw_rate, "samples/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--samples", type=int, default=200_000)
    args = ap.parse_args()
    bench_outbox(args.samples)
    bench_historical()
    asyncio.run(bench_agent(args.mqtt, args.samples))


if __name__ == "__main__":
    main()
