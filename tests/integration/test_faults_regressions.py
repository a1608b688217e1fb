"""Regression tests for defects the fault suite found (fast; they run in the normal suite).

Each reproduces, on a real PostgreSQL, the smallest case of a failure first seen as lost or
duplicated samples in a fault scenario.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest

from edge.contract import encode, to_micros, topic
from historian.ingest import Ingestor
from historian.store.writer import WriteBatch, Writer
from tests.integration.test_store_fixtures import (  # noqa: F401 - fixtures
    birth, data, db, sample, writer,
)

T0 = to_micros(datetime.now(timezone.utc).replace(second=0, microsecond=0))


def test_message_twice_in_one_batch_before_any_commit_is_applied_once(writer, db):
    # Seen with PostgreSQL down: the edge re-sends after its ack timeout while the first copy
    # still waits in ingest, so both copies of a never-committed message meet in one batch.
    writer.write(WriteBatch(births=[birth("T1")]))
    msg = data(1, [sample("T1", T0 + i, float(i)) for i in range(10)])
    res = writer.write(WriteBatch(data=[msg, msg, msg]))
    assert len(res.applied) == 1 and len(res.duplicates) == 2 and res.samples == 10
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM batchwire.samples").fetchone() == (10,)


def test_data_for_a_tag_declared_by_another_edge_is_not_applied(writer, db):
    # Seen in the hostile-payload scenario: tags were looked up by name only, so data from one
    # edge for a tag another edge declared was stored (the wire protocol wants a tag declared
    # by a birth of the same edge).
    writer.write(WriteBatch(births=[birth("T1")]))  # declared by edge e1
    other = data(1, [sample("T1", T0, 99.0)])
    other.msg = dataclasses.replace(other.msg, edge="intruder")
    other.topic = "t/v1/s1/intruder/data"
    res = writer.write(WriteBatch(data=[other]))
    with psycopg.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM batchwire.samples").fetchone()[0]
        quarantined = conn.execute("SELECT reason, detail, edge FROM batchwire.quarantine").fetchall()
    assert stored == 0 and res.samples == 0
    assert [(r, e) for r, _, e in quarantined] == [("tag-owned-by-other-edge", "intruder")]
    assert "T1" in quarantined[0][1] and "owned by edge e1" in quarantined[0][1]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_ingest_does_not_run_on_without_its_writer(fresh_db, mqtt_url, topic_prefix, monkeypatch):
    # Seen in the fault suite: a packing error (struct.error) escaped Writer.write; ingest stayed
    # up, so nothing restarted it, and no sample was stored from then on.
    def broken(self, batch):
        raise RuntimeError("a defect in the write path")

    monkeypatch.setattr(Writer, "write", broken)
    ing = Ingestor(fresh_db, mqtt_url, topic_prefix=topic_prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(ing.run(stop))
    try:
        while not ing.wait_connected(0):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
        parts = urlsplit(mqtt_url)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"reg-{uuid.uuid4().hex[:8]}")
        c.connect(parts.hostname, parts.port or 1883)
        c.loop_start()
        c.publish(topic("birth", "s1", "e1", topic_prefix),
                  encode(birth("T1")), qos=1).wait_for_publish(10)
        c.loop_stop()
        c.disconnect()
        # either the worker ends with the error (a supervisor restarts it) or it keeps writing
        done, _ = await asyncio.wait([task], timeout=15)
        assert done, "ingest still running, its writer gone"
        assert task.exception() is not None
    finally:
        stop.set()
        await asyncio.wait([task], timeout=30)
