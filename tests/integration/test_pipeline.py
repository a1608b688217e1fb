"""The whole chain on real parts: simulated plant (OPC UA + Modbus) → edge agent → Mosquitto
→ historian ingest → PostgreSQL → HTTP API.

An independent MQTT subscriber records every data message the edge publishes; the test then
checks that the database holds exactly those samples, once each, with the same value,
timestamp, quality and batch context.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from urllib.parse import urlsplit

import httpx
import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest

from edge.contract import BirthMessage, DataMessage, DecodeError, decode, encode, now_micros, topic
from edge.contract.messages import Sample
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(240)


class Recorder:
    """Independent witness: subscribes to the edge's topics and keeps every message."""

    def __init__(self, broker_url: str, prefix: str, edge: str):
        self.edge = edge
        parts = urlsplit(broker_url)
        self.data: dict[tuple[str, str, int], DataMessage] = {}
        self.births: list[BirthMessage] = []
        self.acked: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"witness-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/v1/#", qos=1)
        self.client.connect(parts.hostname, parts.port or 1883)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        try:
            m = decode(msg.payload)
        except DecodeError:
            return
        if m.edge != self.edge:
            return
        with self._lock:
            if isinstance(m, DataMessage):
                self.data[(m.edge, m.session, m.seq)] = m
            elif isinstance(m, BirthMessage):
                self.births.append(m)
            elif m.kind == "ack":
                for a, b in m.ranges:
                    self.acked.update((m.session, s) for s in range(a, b + 1))

    def snapshot(self):
        with self._lock:
            return dict(self.data), list(self.births), set(self.acked)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


async def until(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stored_samples(dsn: str, edge: str):
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("""
            SELECT t.name, (extract(epoch FROM s.ts) * 1000000)::bigint, s.value, s.value_text,
                   s.quality::bigint & 4294967295, t.datatype,
                   c.site, c.unit, c.batch, c.phase, c.recipe
              FROM batchwire.samples s
              JOIN batchwire.tags t USING (tag_id)
              LEFT JOIN batchwire.contexts c USING (context_id)
             WHERE t.edge = %s""", (edge,)).fetchall()
    return rows


def _expected_row(msg: DataMessage, s: Sample):
    ctx = msg.contexts.get(s.ctx) if s.ctx else None
    v = s.value
    num = None if v is None or isinstance(v, str) else float(v)
    text = v if isinstance(v, str) else None
    return (s.tag, s.ts, num, text, s.quality,
            *((ctx.site, ctx.unit, ctx.batch, ctx.phase, ctx.recipe) if ctx else (None,) * 5))


def _key(row):
    # NaN != NaN: compare by a representation that treats NaN as one value
    return tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in row)


async def test_plant_to_api_every_sample_once(fresh_db, mqtt_url, topic_prefix, tmp_path):
    from edge.agent import EdgeAgent
    from edge.config import parse_config
    from historian.commands import run_historian
    from historian.demo import demo_plant_config, edge_config_for_plant
    from simulators.runner import PlantRunner

    stop = asyncio.Event()
    api_started = asyncio.Event()
    api_port = free_port()
    witness = Recorder(mqtt_url, topic_prefix, edge="gw-e2e")
    historian = asyncio.create_task(run_historian(
        db=fresh_db, broker=mqtt_url, api_port=api_port, topic_prefix=topic_prefix,
        stop=stop, api_started=api_started))
    try:
        await until(lambda: api_started.is_set() or historian.done(), timeout=60, what="API start")
        assert not historian.done(), historian.exception()

        async with PlantRunner(demo_plant_config()) as plant:
            cfg = parse_config(edge_config_for_plant(
                plant.catalog, broker_url=mqtt_url, outbox_dir=tmp_path / "outbox",
                opcua_endpoint=plant.opcua_endpoint, modbus_host=plant.modbus_host,
                modbus_port=plant.modbus_port, edge_id="gw-e2e", site="site-e2e",
                topic_prefix=topic_prefix))
            async with EdgeAgent(cfg) as agent:
                # let data flow until several messages were committed and acknowledged
                await until(lambda: len(witness.snapshot()[2]) >= 5, timeout=90,
                            what="5 acknowledged data messages")

                # hostile input while the pipeline runs: ingest must quarantine and go on
                await _inject_bad_messages(mqtt_url, topic_prefix)
            # the agent flushed on exit; wait until every published message is acknowledged
            await until(lambda: _all_acked(witness), timeout=90, what="all messages acknowledged")

        data, births, _ = witness.snapshot()
        assert births, "the edge published no birth message"
        assert data, "the edge published no data"

        # --- every sample the edge published is stored exactly once, unchanged
        expected = [_key(_expected_row(m, s)) for m in data.values() for s in m.samples]
        assert len(set(expected)) == len(expected), "edge published the same sample twice"
        stored = [_key(r[:5] + r[6:]) for r in _stored_samples(fresh_db, "gw-e2e")]
        assert len(stored) == len(set(stored)), "a sample is stored twice"
        assert sorted(stored, key=repr) == sorted(expected, key=repr)

        # --- tags registered from the birth, with their metadata
        declared = {t.name: t for b in births for t in b.tags}
        with psycopg.connect(fresh_db) as conn:
            tags = {r[0]: r for r in conn.execute(
                "SELECT name, datatype, unit, low, high FROM batchwire.tags WHERE edge = 'gw-e2e'")}
            quarantine = conn.execute(
                "SELECT reason, detail FROM batchwire.quarantine ORDER BY quarantine_id").fetchall()
            batches = conn.execute("SELECT unit, batch, recipe FROM batchwire.batches").fetchall()
        assert set(tags) == set(declared)
        for name, t in declared.items():
            assert tags[name][1:] == (t.datatype, t.unit, t.low, t.high), name
        assert any(b[0] == "BR01" and b[1] for b in batches), batches

        # --- malformed and undeclared data quarantined with a reason
        reasons = " ".join(f"{r} {d}" for r, d in quarantine)
        assert len(quarantine) >= 2, quarantine
        assert "not-json" in reasons or "not JSON" in reasons
        assert "NOT.DECLARED" in reasons

        # --- the API serves the data
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            r = await http.get("/api/v1/tags")
            assert r.status_code == 200
            assert {t["name"] for t in r.json()} >= set(declared)
            latest = max(s.ts for m in data.values() for s in m.samples if s.tag == "BR01.TEMP")
            r = await http.get("/api/v1/tags/BR01.TEMP/recorded",
                               params={"start": "2000-01-01T00:00:00Z",
                                       "end": "2100-01-01T00:00:00Z", "limit": 100000})
            assert r.status_code == 200
            samples = r.json()["samples"]
            assert len(samples) == sum(1 for m in data.values() for s in m.samples
                                       if s.tag == "BR01.TEMP")
            assert all(s["batch"] and s["phase"] for s in samples if s["good"])
            r = await http.get("/api/v1/batches")
            assert r.status_code == 200 and any(b["unit"] == "BR01" for b in r.json())
            assert latest
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(historian, 30)
        witness.close()


def _all_acked(witness: Recorder) -> bool:
    data, _, acked = witness.snapshot()
    return bool(data) and all((session, seq) in acked for (_, session, seq) in data)


async def _inject_bad_messages(broker_url: str, prefix: str) -> None:
    parts = urlsplit(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:8]}")
    client.connect(parts.hostname, parts.port or 1883)
    client.loop_start()
    try:
        undeclared = DataMessage(edge="gw-rogue", site="site-e2e", session="s-rogue", seq=1,
                                 sent=now_micros(), samples=(Sample("NOT.DECLARED", now_micros(), 1.0),))
        infos = [
            client.publish(topic("data", "site-e2e", "gw-rogue", prefix), b"\x00not json", qos=1),
            client.publish(topic("data", "site-e2e", "gw-rogue", prefix), encode(undeclared), qos=1),
            client.publish(topic("data", "site-e2e", "gw-rogue", prefix),
                           orjson.dumps({"v": 99, "kind": "data"}), qos=1),
        ]
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 10)
    finally:
        client.loop_stop()
        client.disconnect()
