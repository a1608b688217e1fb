"""Fault suite: malformed and hostile payloads (generated with hypothesis) published into
the ingest topics while the real load runs.

Passes when ingest never crashes (the one process started stays up), every bad payload is
in quarantine exactly once with a reason, nothing of the real edge is quarantined, and the
real data is complete: the stored set equals the produced set, 0 lost, 0 duplicated.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import HealthCheck, given, seed, settings

from edge.contract import MAX_PAYLOAD_BYTES, topic
from tests.faults.harness import Pipeline, conclude, until
from tests.faults.hostile import fixed_cases, hostile
from tests.faults.services import OwnMosquitto

pytestmark = [pytest.mark.slow]

SEED = int(os.environ.get("BATCHWIRE_FAULT_SEED", "20261126"))
EXAMPLES = 300
PACE = 0.05  # s between hostile payloads: ~15 s of hostile traffic


class Publisher:
    def __init__(self, broker: str):
        parts = urlsplit(broker)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fault-hostile")
        self.client.connect(parts.hostname, parts.port)
        self.client.loop_start()
        self.sent: list[tuple[str, bytes, str]] = []
        self._lock = threading.Lock()

    def send(self, edge: str, payload: bytes, family: str, prefix: str) -> None:
        t = topic("data", "site-f", edge, prefix)
        self.client.publish(t, payload, qos=1).wait_for_publish(30)
        with self._lock:
            self.sent.append((t, payload, family))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _quarantined(dsn: str) -> list[tuple[str, bytes, str, str | None]]:
    with psycopg.connect(dsn) as conn:
        return [(r[0], bytes(r[1]), r[2], r[3]) for r in conn.execute(
            "SELECT topic, payload, reason, edge FROM batchwire.quarantine")]


@pytest.mark.timeout(420)
async def test_hostile_payloads_under_load(fresh_db, tmp_path, tmp_path_factory):
    broker = OwnMosquitto(tmp_path / "mosquitto")
    broker.start()
    pipe = Pipeline(tmp_path, db=fresh_db, broker=broker.url)
    pub = Publisher(broker.url)
    try:
        await pipe.start()
        await pipe.run_for(5)

        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(hostile())
        def publish_all(case):
            edge, payload, family = case
            pub.send(edge, payload, family, pipe.prefix)
            time.sleep(PACE)  # spread over the load rather than one burst

        for edge, payload, family in fixed_cases(MAX_PAYLOAD_BYTES):
            await asyncio.to_thread(pub.send, edge, payload, family, pipe.prefix)
        # hypothesis runs in a thread: the load server shares this event loop
        await asyncio.to_thread(publish_all)
        await pipe.run_for(5)

        want = Counter((t, p) for t, p, _ in pub.sent)
        await until(lambda: sum(1 for q in _quarantined(pipe.db) if q[3] != pipe.edge_id) >= len(pub.sent),
                    timeout=120, what=f"{len(pub.sent)} hostile payloads in quarantine",
                    on_timeout=pipe.diagnostics)
        quarantined = _quarantined(pipe.db)
        got = Counter((t, p) for t, p, _, edge in quarantined if edge != pipe.edge_id)
        real = [q for q in quarantined if q[3] == pipe.edge_id]
        reasons = Counter(r for _, _, r, _ in quarantined)
        families = Counter(f for _, _, f in pub.sent)
        rep = await conclude(pipe, f"hostile payloads x{len(pub.sent)}",
                             basetemp=tmp_path_factory.getbasetemp(), recovery_s=None,
                             criterion="stored set == produced set; every bad payload quarantined once; "
                                       "ingest never restarted",
                             detail={"seed": SEED, "hostile": len(pub.sent), "families": dict(families),
                                     "quarantine_reasons": dict(reasons)})
        assert not real, f"real edge data quarantined: {real[:3]}"
        missing = want - got
        extra = got - want
        assert not missing, f"{sum(missing.values())} bad payloads not quarantined: {list(missing)[:3]}"
        assert not extra, f"{sum(extra.values())} payloads quarantined more than once: {list(extra)[:3]}"
        assert rep.lost == 0
    finally:
        pub.close()
        await pipe.close()
        broker.kill()
