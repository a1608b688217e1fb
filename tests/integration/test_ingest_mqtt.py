"""Ingest against the machine's real Mosquitto and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest

from edge.contract import (
    BatchContext, BirthMessage, DataMessage, EventMessage, Sample, StateMessage, TagInfo,
    decode, encode, now_micros, topic,
)
from historian.ingest import Ingestor
from historian.ingest.mqtt import parse_broker_url
from historian.store import migrate

SITE, EDGE = "plant1", "gw1"
CTX = {"c": BatchContext(SITE, "BR01", "B-1", "growth", "R1")}


@pytest.fixture
def db(fresh_db):
    migrate(fresh_db)
    return fresh_db


class Edge:
    """A minimal edge: publishes at QoS 1 and records the historian's acknowledgements."""

    def __init__(self, url: str, prefix: str, edge: str = EDGE):
        addr = parse_broker_url(url)
        self.prefix, self.edge = prefix, edge
        self.acked: dict[str, set[int]] = {}
        self.acked_events: dict[str, list[str]] = {}  # session -> event ids, in arrival order
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_ack
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic("ack", SITE, edge, prefix), qos=1)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        assert subscribed.wait(10), "edge could not subscribe to its ack topic"

    def _on_ack(self, client, userdata, message):
        ack = decode(message.payload)
        with self.cond:
            got = self.acked.setdefault(ack.session, set())
            for a, b in ack.ranges:
                got.update(range(a, b + 1))
            self.acked_events.setdefault(ack.session, []).extend(ack.events)
            self.cond.notify_all()

    def wait_acked(self, session: str, seqs, timeout: float = 30) -> None:
        want = set(seqs)
        with self.cond:
            assert self.cond.wait_for(lambda: want <= self.acked.get(session, set()), timeout), \
                f"not acknowledged: {sorted(want - self.acked.get(session, set()))[:10]}"

    def wait_events(self, session: str, ids, timeout: float = 30) -> None:
        want = set(ids)
        with self.cond:
            assert self.cond.wait_for(lambda: want <= set(self.acked_events.get(session, ())), timeout), \
                f"events not acknowledged under {session!r}: {self.acked_events}"

    def send(self, kind: str, payload: bytes) -> None:
        info = self.client.publish(topic(kind, SITE, self.edge, self.prefix), payload, qos=1)
        info.wait_for_publish(timeout=10)

    def birth(self, *names: str, session="S1") -> None:
        self.send("birth", encode(BirthMessage(self.edge, SITE, session, now_micros(),
                                               tuple(TagInfo(n, "float", "degC") for n in names))))

    def data(self, seq: int, samples, session="S1") -> DataMessage:
        msg = DataMessage(self.edge, SITE, session, seq, now_micros(), tuple(samples), CTX)
        self.send("data", encode(msg))
        return msg

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def q(dsn, sql, *args):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached before the deadline")


@pytest.fixture
def edge(mqtt_url, topic_prefix):
    e = Edge(mqtt_url, topic_prefix)
    yield e
    e.close()


async def started(ing: Ingestor) -> None:
    assert await asyncio.to_thread(ing.wait_connected, 10)


async def test_birth_then_data_rows_and_ack_after_commit(db, mqtt_url, topic_prefix, edge):
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.05) as ing:
        await started(ing)
        edge.birth("TEMP", "PH")
        t0 = now_micros()
        for seq in range(1, 6):
            edge.data(seq, [Sample("TEMP", t0 + seq * 1000 + i, 37.0 + i, 0, "c") for i in range(100)]
                      + [Sample("PH", t0 + seq * 1000, 7.0, 0x40000000, "c")])
        await asyncio.to_thread(edge.wait_acked, "S1", range(1, 6))
        # the acknowledgement came after the commit: the rows are there now
        assert q(db, "SELECT count(*) FROM batchwire.samples") == [(505,)]
        assert q(db, "SELECT count(*) FROM batchwire.ingest_log") == [(5,)]
        assert q(db, "SELECT name, unit FROM batchwire.tags ORDER BY name") == [("PH", "degC"), ("TEMP", "degC")]
        assert q(db, "SELECT batch FROM batchwire.batches") == [("B-1",)]
        st = ing.status()
        assert st["connected"] and st["samples"] == 505 and st["last_commit"] is not None


async def test_redelivered_message_applied_once_and_acked_again(db, mqtt_url, topic_prefix, edge):
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.05) as ing:
        await started(ing)
        edge.birth("TEMP")
        msg = edge.data(1, [Sample("TEMP", now_micros(), 1.0)])
        await asyncio.to_thread(edge.wait_acked, "S1", [1])
        with edge.cond:
            edge.acked.clear()
        edge.send("data", encode(msg))
        await asyncio.to_thread(edge.wait_acked, "S1", [1])
        assert q(db, "SELECT count(*) FROM batchwire.samples") == [(1,)]
        wait_for(lambda: ing.status()["duplicates"] == 1)


async def test_bad_input_is_quarantined_and_ingest_continues(db, mqtt_url, topic_prefix, edge):
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.05) as ing:
        await started(ing)
        edge.birth("TEMP")
        edge.send("data", b"{not json")
        edge.send("data", orjson.dumps({"v": 99, "kind": "data"}))
        edge.send("data", orjson.dumps({"v": 1, "kind": "data", "edge": EDGE}))
        edge.send("event", encode(StateMessage(EDGE, SITE, "S1", "online", now_micros())))  # wrong topic
        edge.data(1, [Sample("TEMP", now_micros(), 1.0), Sample("GHOST", now_micros(), 2.0)])
        edge.data(2, [Sample("TEMP", now_micros() + 1, 3.0)])
        edge.send("event", encode(EventMessage(EDGE, SITE, "ev-1", "data-gap", now_micros(), now_micros())))
        edge.send("event", encode(EventMessage(EDGE, SITE, "ev-1", "data-gap", now_micros(), now_micros())))
        edge.send("state", encode(StateMessage(EDGE, SITE, "S1", "online", now_micros())))
        await asyncio.to_thread(edge.wait_acked, "S1", [1, 2])
        wait_for(lambda: q(db, "SELECT count(*) FROM batchwire.edges WHERE state = 'online'") == [(1,)])
        reasons = sorted(r[0] for r in q(db, "SELECT reason FROM batchwire.quarantine"))
        assert reasons == ["invalid", "not-json", "topic-mismatch", "undeclared-tag", "wrong-version"]
        assert q(db, "SELECT count(*) FROM batchwire.samples") == [(2,)]
        assert q(db, "SELECT name FROM batchwire.tags") == [("TEMP",)]
        assert q(db, "SELECT source_id, type FROM batchwire.events") == [("ev-1", "data-gap")]
        assert ing.status()["quarantined"] == 5


async def test_two_workers_on_a_shared_subscription_no_loss_no_dups(db, mqtt_url, topic_prefix, edge):
    group = f"g{uuid.uuid4().hex[:6]}"
    a = Ingestor(db, mqtt_url, topic_prefix=topic_prefix, share_group=group, max_batch_delay=0.05)
    b = Ingestor(db, mqtt_url, topic_prefix=topic_prefix, share_group=group, max_batch_delay=0.05)
    async with a, b:
        await started(a)
        await started(b)
        edge.birth("TEMP")
        wait_for(lambda: q(db, "SELECT count(*) FROM batchwire.tags") == [(1,)])
        t0 = now_micros()
        n = 200
        for seq in range(1, n + 1):
            edge.data(seq, [Sample("TEMP", t0 + seq * 100 + i, float(i)) for i in range(50)])
        await asyncio.to_thread(edge.wait_acked, "S1", range(1, n + 1))
        assert q(db, "SELECT count(*), count(DISTINCT ts) FROM batchwire.samples") == [(n * 50, n * 50)]
        assert q(db, "SELECT count(*) FROM batchwire.ingest_log") == [(n,)]
        workers = {r[0] for r in q(db, "SELECT DISTINCT worker FROM batchwire.ingest_log")}
        assert workers == {a.worker_id, b.worker_id}  # the group really split the stream


async def test_rollups_follow_ingest_outside_the_transaction(db, mqtt_url, topic_prefix, edge):
    """The plain backend's rollup thread folds what ingest committed into samples_1m/1h,
    late data included; on TimescaleDB the continuous aggregates answer the same."""
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.05,
                        rollup_interval=0.1) as ing:
        await started(ing)
        edge.birth("TEMP")
        t0 = now_micros() - 600_000_000
        t0 -= t0 % 60_000_000
        edge.data(1, [Sample("TEMP", t0 + i * 1_000_000, float(i), 0, "c") for i in range(0, 120, 2)])
        edge.data(2, [Sample("TEMP", t0 + i * 1_000_000, float(i), 0, "c") for i in range(1, 120, 2)])  # late
        await asyncio.to_thread(edge.wait_acked, "S1", [1, 2])
        want = [(0.0, 59.0, 60), (60.0, 119.0, 60)]
        sql = "SELECT min, max, count FROM batchwire.samples_1m ORDER BY bucket"
        await asyncio.to_thread(wait_for, lambda: q(db, sql) == want)
        assert q(db, "SELECT min(min), max(max), sum(count)::int FROM batchwire.samples_1h") == [(0.0, 119.0, 120)]


async def test_events_are_acknowledged_after_commit_and_again_when_resent(db, mqtt_url, topic_prefix, edge):
    """Event ids come back in an ack after the commit: under the literal session "events"
    while the historian knows no session of the edge, under the edge's session once a state
    message told it; a re-sent event (stored already) is acknowledged again, stored once;
    one the store refuses is quarantined and acknowledged so it is not re-sent forever."""
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.05) as ing:
        await started(ing)
        t = now_micros()
        gap = EventMessage(EDGE, SITE, "gap-1", "data-gap", t, t, t - 10, t, ("TEMP",), {"dropped_samples": 3})
        edge.send("event", encode(gap))
        await asyncio.to_thread(edge.wait_events, "events", ["gap-1"])
        assert q(db, "SELECT source_id FROM batchwire.events") == [("gap-1",)]

        edge.send("state", encode(StateMessage(EDGE, SITE, "S7", "online", now_micros())))
        await asyncio.to_thread(wait_for, lambda: q(db, "SELECT session FROM batchwire.edges") == [("S7",)])
        edge.send("event", encode(gap))  # re-delivery
        edge.send("event", encode(EventMessage(EDGE, SITE, "down-1", "source-down", t, t)))
        await asyncio.to_thread(edge.wait_events, "S7", ["gap-1", "down-1"])
        assert q(db, "SELECT source_id FROM batchwire.events ORDER BY source_id") == [("down-1",), ("gap-1",)]

        # jsonb refuses \u0000: the store rejects this event; it is quarantined and acknowledged
        edge.send("event", encode(EventMessage(EDGE, SITE, "bad-1", "source-down", t, t, detail={"x": "a\x00b"})))
        await asyncio.to_thread(edge.wait_events, "S7", ["bad-1"])
        assert q(db, "SELECT reason, edge FROM batchwire.quarantine") == [("store-error", EDGE)]
        assert q(db, "SELECT count(*) FROM batchwire.events WHERE source_id = 'bad-1'") == [(0,)]
        assert ing.status()["quarantined"] == 1


async def test_low_rate_rows_are_repacked_by_the_ingest_worker(db, mqtt_url, topic_prefix, edge, monkeypatch):
    """Plain backend: one sample per message (a low rate) makes one packed row per sample;
    the worker's maintenance merges the rows of a finished hour into one, samples unchanged."""
    from historian.ingest import ingestor
    from historian.store import Backend
    from historian.store.backend import installed_backend

    with psycopg.connect(db) as conn:
        if installed_backend(conn) is not Backend.PLAIN:
            pytest.skip("packing is the plain backend's")
    monkeypatch.setattr(ingestor, "REPACK_EVERY", 0.0)
    async with Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.01, rollup_interval=0.1) as ing:
        await started(ing)
        edge.birth("TEMP")
        t0 = now_micros() - 3 * 3_600_000_000
        t0 -= t0 % 3_600_000_000
        for seq in range(1, 6):
            edge.data(seq, [Sample("TEMP", t0 + seq * 1_000_000, float(seq), 0, "c")])
            await asyncio.to_thread(edge.wait_acked, "S1", [seq])  # one write batch each
        await asyncio.to_thread(wait_for, lambda: q(db, "SELECT n FROM batchwire.samples_packed") == [(5,)])
    assert [r[0] for r in q(db, "SELECT value FROM batchwire.samples ORDER BY ts")] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_a_writer_defect_ends_run_instead_of_idling(db, mqtt_url, topic_prefix, edge, monkeypatch):
    """An unexpected exception in the write path (a defect, not a database outage) must not
    leave a connected worker that never commits: run() raises, nothing was acknowledged."""
    from historian.store.errors import StoreError
    from historian.store.writer import Writer

    def broken(self, batch):
        raise RuntimeError("a defect in the write path")

    monkeypatch.setattr(Writer, "write", broken)
    ing = Ingestor(db, mqtt_url, topic_prefix=topic_prefix, max_batch_delay=0.01)
    task = asyncio.create_task(ing.run(asyncio.Event()))
    while not ing.wait_connected(0):
        assert not task.done(), task.exception()
        await asyncio.sleep(0.05)
    edge.birth("TEMP")
    with pytest.raises(StoreError, match="ingest writer failed"):
        await asyncio.wait_for(task, 30)
    assert ing.status()["writer_failed"] and ing.status()["messages"] == 0
