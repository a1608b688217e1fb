"""The edge agent against a real OPC UA server (asyncua, in process) and the machine's
Mosquitto: birth, state, data with batch context, end-to-end acknowledgement, re-sending,
restart with the same session, capture while the broker is unreachable."""

from __future__ import annotations

import asyncio
import math

import pytest

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.contract.messages import BirthMessage, StateMessage, now_micros
from edge.outbox import Outbox
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import opcua_plant as plant  # noqa: F401 (fixture)
from tests.integration.test_edge_fixtures import NAMESPACE, utc, wait_until

SITE, EDGE = "site-a", "gw-it"


def make_config(plant, mqtt_url, prefix, data_dir, **mqtt):
    return parse_config({
        "edge": {"id": EDGE, "site": SITE, "data_dir": str(data_dir)},
        "mqtt": {"url": mqtt_url, "topic_prefix": prefix, "client_id": f"{prefix}-edge",
                 "max_batch_delay": 0.1, "max_samples_per_message": 25, **mqtt},
        "opcua": [{
            "name": "br01", "endpoint": plant.endpoint, "namespace_uri": NAMESPACE,
            "publishing_interval": 0.1, "queue_size": 200,
            "context": {"unit": "BR01", "batch": "s=BR01.BATCH_ID", "phase": "s=BR01.PHASE",
                        "recipe": "s=BR01.RECIPE"},
            "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"},
                     {"name": "BR01.PH", "node": "s=BR01.PH", "unit": "pH units"}],
        }],
    })


async def run_batch(plant, t0: int, n: int = 40) -> dict[float, str]:
    """Batch B-1: phase 'setup' then 'growth'; returns value -> expected phase."""
    expected = {}
    await plant.write("BR01.BATCH_ID", "B-1", utc(t0))
    await plant.write("BR01.RECIPE", "CHO-FB", utc(t0))
    await plant.write("BR01.PHASE", "setup", utc(t0))
    for i in range(n):
        if i == n // 2:
            await plant.write("BR01.PHASE", "growth", utc(t0 + 1000 + i))
        value = 100.0 + i
        await plant.write("BR01.TEMP", value, utc(t0 + 1000 + i))
        expected[value] = "setup" if i < n // 2 else "growth"
    await plant.write("BR01.TEMP", math.nan, utc(t0 + 5000))
    return expected


async def test_publishes_state_birth_and_data_with_context(plant, collector, mqtt_url, topic_prefix, tmp_path):
    cfg = make_config(plant, mqtt_url, topic_prefix, tmp_path / "outbox")
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        expected = await run_batch(plant, now_micros())
        temps = lambda: [s for s, _ in collector.samples("BR01.TEMP")]  # noqa: E731
        await wait_until(lambda: any(isinstance(s.value, float) and math.isnan(s.value) for s in temps()),
                         what="all TEMP samples")
        session = agent.stats()["session"]

    assert collector.errors == []
    states = collector.of("state")
    assert isinstance(states[0], StateMessage) and states[0].state == "online"
    assert states[-1].state == "offline"  # graceful stop announces it
    births = collector.of("birth")
    assert births and all(isinstance(b, BirthMessage) for b in births)
    info = {t.name: t for t in births[-1].tags}
    assert set(info) == {"BR01.TEMP", "BR01.PH"}
    assert (info["BR01.TEMP"].unit, info["BR01.TEMP"].low, info["BR01.TEMP"].high) == ("degC", 0.0, 50.0)
    assert info["BR01.TEMP"].description == "BR01.TEMP measured"
    assert info["BR01.TEMP"].datatype == "float"
    assert info["BR01.PH"].unit == "pH units"  # configured values win over the server's
    assert info["BR01.TEMP"].source == f"opcua:nsu={NAMESPACE};s=BR01.TEMP"

    # the birth came before any data on the connection
    kinds = [t.rsplit("/", 1)[1] for t, _, _ in collector.messages]
    assert kinds.index("birth") < kinds.index("data")

    data = collector.data()
    assert all(m.edge == EDGE and m.site == SITE and m.session == session for m in data)
    seqs = sorted({m.seq for m in data})
    assert seqs == list(range(1, len(seqs) + 1))  # no gaps
    assert all(len(m.samples) <= 25 for m in data)

    got = {}
    for s, m in collector.samples("BR01.TEMP"):
        if s.value in expected:
            ctx = m.contexts[s.ctx]
            got[s.value] = ctx.phase
            assert (ctx.site, ctx.unit, ctx.batch, ctx.recipe) == (SITE, "BR01", "B-1", "CHO-FB")
            assert s.quality == 0
    assert got == expected  # every value arrived, each with the phase in force when measured


async def test_acks_delete_outbox_rows_and_unacked_are_resent(plant, collector, mqtt_url, topic_prefix, tmp_path):
    cfg = make_config(plant, mqtt_url, topic_prefix, tmp_path / "outbox", ack_timeout=1)
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await run_batch(plant, now_micros(), n=10)
        await wait_until(lambda: agent.stats()["captured"] >= 11 and agent.stats()["buffered"] == 0,
                         what="capture")
        session = agent.stats()["session"]
        last = agent.stats()["next_seq"] - 1
        # nothing acknowledged: each message comes again, same identity, marked historical
        await wait_until(lambda: {m.seq for m in collector.data() if m.historical} >= set(range(1, last + 1)),
                         what="re-sent messages")
        first = {m.seq: m for m in collector.data() if not m.historical}
        for m in collector.data():
            if m.historical and m.seq in first:
                assert m.samples == first[m.seq].samples and m.session == session
        assert agent.stats()["backlog"] == last

        collector.ack(SITE, EDGE, "some-other-session", [(1, last)])  # ignored
        collector.ack(SITE, EDGE, session, [(1, last)])
        await wait_until(lambda: agent.stats()["backlog"] == 0, what="acknowledgement applied")
        assert agent.stats()["acknowledged"] == last
        assert await asyncio.to_thread(agent.outbox.pending_seqs) == []
        assert agent.delivery.unacknowledged == 0


async def test_restart_keeps_session_continues_seq_and_replays(plant, collector, mqtt_url, topic_prefix, tmp_path):
    cfg = make_config(plant, mqtt_url, topic_prefix, tmp_path / "outbox", ack_timeout=3600)
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await run_batch(plant, now_micros(), n=10)
        await wait_until(lambda: agent.stats()["captured"] >= 11 and agent.stats()["buffered"] == 0,
                         what="capture")
        session, next_seq = agent.stats()["session"], agent.stats()["next_seq"]
    owed = set(range(1, next_seq))

    async with EdgeAgent(cfg) as agent:
        assert agent.stats()["session"] == session
        # the unacknowledged messages of the first run go out again, as historical
        await wait_until(lambda: {m.seq for m in collector.data() if m.historical} >= owed,
                         what="replay after restart")
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await plant.write("BR01.TEMP", 1.0, utc(now_micros()))
        await wait_until(lambda: any(m.seq >= next_seq for m in collector.data()), what="new data")
        assert min(m.seq for m in collector.data() if m.seq >= next_seq) == next_seq
        collector.ack(SITE, EDGE, session, [(1, agent.stats()["next_seq"] - 1)])
        await wait_until(lambda: agent.stats()["backlog"] == 0, what="acknowledgement applied")


async def test_captures_durably_while_broker_unreachable(plant, collector, mqtt_url, topic_prefix, tmp_path):
    dead = f"mqtt://127.0.0.1:{free_port()}"
    offline = make_config(plant, dead, topic_prefix, tmp_path / "outbox")
    async with EdgeAgent(offline) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await run_batch(plant, now_micros(), n=10)
        await wait_until(lambda: agent.stats()["captured"] >= 11 and agent.stats()["buffered"] == 0,
                         what="capture")
        stats = agent.stats()
        assert stats["connected"] is False and stats["published"] == 0
        assert stats["backlog"] == stats["next_seq"] - 1 > 0
    box = Outbox.open(tmp_path / "outbox", edge=EDGE, site=SITE)
    owed = box.pending_seqs()
    box.close()
    assert owed == list(range(1, stats["next_seq"]))

    online = make_config(plant, mqtt_url, topic_prefix, tmp_path / "outbox")
    async with EdgeAgent(online) as agent:
        await wait_until(lambda: {m.seq for m in collector.data()} >= set(owed), what="backlog delivered")
        assert all(m.historical for m in collector.data() if m.seq in owed)
        values = {s.value for s, _ in collector.samples("BR01.TEMP")}
        assert {100.0 + i for i in range(10)} <= values


async def test_run_agent_until_stop(collector, mqtt_url, topic_prefix, tmp_path):
    from edge.agent import run_agent

    cfg = parse_config({"edge": {"id": "gw-run", "site": SITE, "data_dir": str(tmp_path / "o")},
                        "mqtt": {"url": mqtt_url, "topic_prefix": topic_prefix}})
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(cfg, stop=stop))
    await wait_until(lambda: any(m.state == "online" for m in collector.of("state")), what="online")
    assert collector.of("birth")[-1].tags == ()
    stop.set()
    await asyncio.wait_for(task, 30)
    assert collector.of("state")[-1].state == "offline"


async def test_full_outbox_drops_oldest_and_publishes_data_gap(collector, mqtt_url, topic_prefix, tmp_path):
    from edge.contract.messages import EventMessage
    from edge.reading import Reading

    def config(url):
        return parse_config({"edge": {"id": "gw-gap", "site": SITE, "data_dir": str(tmp_path / "o")},
                             "mqtt": {"url": url, "topic_prefix": topic_prefix, "max_batch_delay": 0.05,
                                      "max_samples_per_message": 100},
                             "outbox": {"max_bytes": 64 * 1024}})

    t0 = 10**15
    async with EdgeAgent(config(f"mqtt://127.0.0.1:{free_port()}"), sources=[]) as agent:
        for i in range(5000):  # far more than 64 KiB of messages, while the broker is away
            agent.reading(Reading(f"T{i % 3}", t0 + i, float(i), 0, None))
        await wait_until(lambda: agent.stats()["captured"] == 5000, what="capture")
        stats = agent.stats()
        assert stats["dropped"] > 0 and stats["backlog_bytes"] <= 64 * 1024
    async with EdgeAgent(config(mqtt_url), sources=[]) as agent:
        await wait_until(lambda: collector.of("event"), what="data-gap event")
        ev = collector.of("event")[0]
        assert isinstance(ev, EventMessage) and ev.type == "data-gap"
        assert ev.start == t0 and set(ev.tags) == {"T0", "T1", "T2"}
        assert ev.detail["first_seq"] == 1 and ev.detail["reason"] == "max_bytes"
        # what was kept arrives; what was dropped is exactly what the events say
        dropped = sum(e.detail["samples"] for e in collector.of("event"))
        await wait_until(lambda: sum(len(m.samples) for m in {m.seq: m for m in collector.data()}.values())
                         == 5000 - dropped, what="kept data")
        assert dropped == agent.stats()["dropped"]


async def test_events_stay_until_the_historian_acknowledges_them(collector, mqtt_url, topic_prefix, tmp_path):
    from edge.reading import Reading

    def config(url):
        return parse_config({"edge": {"id": "gw-ev", "site": SITE, "data_dir": str(tmp_path / "o")},
                             "mqtt": {"url": url, "topic_prefix": topic_prefix, "max_batch_delay": 0.05,
                                      "max_samples_per_message": 100, "ack_timeout": 1},
                             "outbox": {"max_bytes": 64 * 1024}})

    async with EdgeAgent(config(f"mqtt://127.0.0.1:{free_port()}"), sources=[]) as agent:
        for i in range(5000):
            agent.reading(Reading(f"T{i % 3}", 10**15 + i, float(i), 0, None))
        await wait_until(lambda: agent.stats()["captured"] == 5000, what="capture")
        assert agent.stats()["events_pending"] > 0
    async with EdgeAgent(config(mqtt_url), sources=[]) as agent:
        stored = [e for e, _ in await asyncio.to_thread(agent.outbox.pending_events)]
        assert stored and agent.stats()["events_pending"] == len(stored)

        def sent(event_id):
            return sum(1 for e in collector.of("event") if e.id == event_id)

        # the broker's PUBACK is not enough: without an ack each event comes again
        await wait_until(lambda: all(sent(e) >= 2 for e in stored), what="events re-sent")
        assert [e for e, _ in await asyncio.to_thread(agent.outbox.pending_events)] == stored

        # an ack of events only (no ranges), filed under another session, still counts
        first, rest = stored[:1], stored[1:]
        collector.ack(SITE, "gw-ev", "another-session", [], events=first)
        await wait_until(lambda: agent.stats()["events_acknowledged"] == 1, what="event ack applied")
        assert [e for e, _ in await asyncio.to_thread(agent.outbox.pending_events)] == rest
        collector.ack(SITE, "gw-ev", agent.stats()["session"], [], events=[*stored, "unknown-id"])
        await wait_until(lambda: agent.stats()["events_pending"] == 0, what="all events acknowledged")
        assert await asyncio.to_thread(agent.outbox.pending_events) == []
        before = {e: sent(e) for e in stored}
        # acknowledged events are not sent again (several ack timeouts later)
        await wait_until(lambda: agent.stats()["resent"] >= 3 * agent.stats()["backlog"] > 0,
                         what="data re-sent meanwhile")
        assert {e: sent(e) for e in stored} == before


class _FailingConnection:
    """The outbox's SQLite connection with writes failing as on a full disk, while ``fail``."""

    def __init__(self, real):
        self.real = real
        self.fail = True

    def _check(self, sql: str) -> None:
        if self.fail and not sql.lstrip().upper().startswith(("ROLLBACK", "SELECT")):
            import sqlite3

            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql, *args):
        self._check(sql)
        return self.real.execute(sql, *args)

    def executemany(self, sql, *args):
        self._check(sql)
        return self.real.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self.real, name)


async def test_failing_outbox_bounds_memory_and_records_the_drop(collector, mqtt_url, topic_prefix, tmp_path,
                                                                 caplog):
    from edge.contract.messages import EventMessage
    from edge.reading import Reading

    bound = 1000
    cfg = parse_config({"edge": {"id": "gw-mem", "site": SITE, "data_dir": str(tmp_path / "o")},
                        "mqtt": {"url": mqtt_url, "topic_prefix": topic_prefix, "max_batch_delay": 0.05,
                                 "max_samples_per_message": 100},
                        "outbox": {"max_memory_samples": bound}})
    t0, total = 10**15, 6000
    async with EdgeAgent(cfg, sources=[]) as agent:
        conn = agent.outbox._conn = _FailingConnection(agent.outbox._conn)
        agent.reading(Reading("T0", t0, 0.0, 0, None))
        await wait_until(lambda: agent.stats()["outbox_failing"], what="a failed commit")
        for i in range(1, total):
            agent.reading(Reading(f"T{i % 3}", t0 + i, float(i), 0, None))
            assert len(agent.batcher) + len(agent.unsaved) <= bound
            if i % 50 == 0:
                await asyncio.sleep(0)  # sealing and commit attempts run, as with real sources
        stats = agent.stats()
        assert stats["captured"] == 0 and stats["buffered"] <= bound
        dropped = stats["dropped_in_memory"]
        assert dropped >= total - bound
        assert str(agent.outbox.path) in caplog.text and "database or disk is full" in caplog.text

        conn.fail = False  # the disk has room again
        await wait_until(lambda: collector.of("event"), what="data-gap event")
        ev, = collector.of("event")
        assert isinstance(ev, EventMessage) and ev.type == "data-gap"
        assert ev.detail["reason"] == "max_memory_samples" and ev.detail["samples"] == dropped
        assert "disk is full" in ev.detail["outbox_error"]
        # the oldest went: exactly the first `dropped` readings, all three tags
        assert (ev.start, ev.end, set(ev.tags)) == (t0, t0 + dropped - 1, {"T0", "T1", "T2"})
        await wait_until(lambda: agent.stats()["captured"] == total - dropped, what="kept samples committed")
        await wait_until(lambda: sum(len(m.samples) for m in {m.seq: m for m in collector.data()}.values())
                         == total - dropped, what="kept samples published")
        got = sorted(s.ts for m in {m.seq: m for m in collector.data()}.values() for s in m.samples)
        assert got == list(range(t0 + dropped, t0 + total))
        assert not agent.stats()["outbox_failing"]
        assert "commits again" in caplog.text
