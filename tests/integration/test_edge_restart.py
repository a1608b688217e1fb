"""An agent restart and an OPC UA reconnect against a real OPC UA server and Mosquitto: the
downtime is reported as one data-gap event (reason edge-restart) and the value a new
subscription re-reports unchanged is not captured twice."""

from __future__ import annotations

import pytest

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.contract.messages import EventMessage, TagInfo, now_micros
from edge.contract.quality import BAD_NOT_CONNECTED
from tests.faults.proxy import FaultProxy
from tests.integration.test_edge_fixtures import opcua_plant as plant  # noqa: F401 (fixture)
from tests.integration.test_edge_fixtures import NAMESPACE, Collector, utc, wait_until

SITE, EDGE = "site-a", "gw-restart"
TAGS = ("BR01.TEMP", "BR01.PH", "BR01.COUNT")


def make_config(endpoint: str, mqtt_url: str, prefix: str, data_dir):
    return parse_config({
        "edge": {"id": EDGE, "site": SITE, "data_dir": str(data_dir)},
        "mqtt": {"url": mqtt_url, "topic_prefix": prefix, "client_id": f"{prefix}-edge",
                 "max_batch_delay": 0.1, "ack_timeout": 3600},
        "opcua": [{
            "name": "br01", "endpoint": endpoint, "namespace_uri": NAMESPACE,
            "publishing_interval": 0.1, "queue_size": 50, "timeout": 2,
            "tags": [{"name": t, "node": f"s={t}"} for t in TAGS],
        }],
    })


def occurrences(collector: Collector, tag: str, ts: int, value) -> int:
    return sum(1 for s, _ in collector.samples(tag) if s.ts == ts and s.value == value)


async def test_restart_reports_downtime_and_drops_the_re_reported_values(plant, collector, mqtt_url,
                                                                         topic_prefix, tmp_path):
    cfg = make_config(plant.endpoint, mqtt_url, topic_prefix, tmp_path / "outbox")
    t1 = now_micros()
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await plant.write("BR01.TEMP", 20.0, utc(t1))
        await plant.write("BR01.PH", 7.1, utc(t1))
        await wait_until(lambda: occurrences(collector, "BR01.PH", t1, 7.1) == 1
                         and occurrences(collector, "BR01.TEMP", t1, 20.0) == 1, what="first values")
        count_before = [s for s, _ in collector.samples("BR01.COUNT")]
        assert agent.stats()["suppressed_repeats"] == 0 and agent.stats()["downtime_pending"] is False
    stopped = now_micros()

    # while the agent is down: TEMP changes twice (the first change is lost), PH and COUNT do not
    lost, t2 = stopped + 1000, stopped + 2000
    await plant.write("BR01.TEMP", 21.0, utc(lost))
    await plant.write("BR01.TEMP", 22.0, utc(t2))

    async with EdgeAgent(cfg) as agent:
        started = now_micros()
        await wait_until(lambda: occurrences(collector, "BR01.TEMP", t2, 22.0) == 1, what="value after restart")
        await wait_until(lambda: collector.of("event"), what="downtime event")
        stats = agent.stats()
        assert stats["suppressed_repeats"] == 2  # PH and COUNT re-reported unchanged
        assert stats["downtime_pending"] is False

        (event,) = collector.of("event")
        assert isinstance(event, EventMessage) and event.type == "data-gap"
        assert event.detail["reason"] == "edge-restart"
        assert event.tags == ("BR01.TEMP",)
        # from the last TEMP captured before the stop to the first after: the lost value is inside
        assert (event.start, event.end) == (t1, t2)
        assert event.start < stopped and event.start < lost < event.end
        assert event.detail["ranges"] == {"BR01.TEMP": [t1, t2]}
        assert event.detail["unchanged"] == ["BR01.COUNT", "BR01.PH"]
        assert event.detail["session"] == stats["session"] and stats["session"] in event.id
        assert stopped < event.detail["restarted"] <= started

        # each value is in the record once; a value that did change after the restart is kept
        assert occurrences(collector, "BR01.PH", t1, 7.1) == 1
        assert [s for s, _ in collector.samples("BR01.COUNT")] == count_before
        t3 = now_micros()
        await plant.write("BR01.PH", 7.2, utc(t3))  # changes after the restart are captured
        await wait_until(lambda: occurrences(collector, "BR01.PH", t3, 7.2) == 1, what="new PH sample")

        collector.ack(SITE, EDGE, stats["session"], [], events=[event.id])
        await wait_until(lambda: agent.stats()["events_acknowledged"] == 1, what="event acknowledged")

    # a third start: nothing changed meanwhile, so no new event, and nothing captured twice
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["suppressed_repeats"] == 3, what="three re-reported values")
        await wait_until(lambda: not agent.stats()["downtime_pending"], what="downtime settled")
        assert agent.stats()["captured"] == 0
    assert len(collector.of("event")) == 1


class SilentSource:
    """Declares the tags and never reports (a server that does not answer at all)."""

    name, connected = "br01", False

    def tags(self) -> list[TagInfo]:
        return [TagInfo(t) for t in TAGS]

    def units(self) -> list[str]:
        return []

    async def run(self, sink, stop) -> None:
        await stop.wait()


async def test_stop_before_any_tag_reported_merges_into_the_next_restart(plant, collector, mqtt_url,
                                                                          topic_prefix, tmp_path):
    cfg = make_config(plant.endpoint, mqtt_url, topic_prefix, tmp_path / "outbox")
    t1 = now_micros()
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await plant.write("BR01.TEMP", 20.0, utc(t1))
        await wait_until(lambda: occurrences(collector, "BR01.TEMP", t1, 20.0) == 1, what="first value")
    # a run in which no tag reported: its downtime cannot be closed yet and stays recorded
    async with EdgeAgent(cfg, sources=[SilentSource()]) as agent:
        assert agent.stats()["downtime_pending"]
    assert collector.of("event") == []
    t2 = now_micros()
    await plant.write("BR01.TEMP", 21.0, utc(t2))
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: collector.of("event"), what="downtime event")
    (event,) = collector.of("event")
    assert event.detail["reason"] == "edge-restart" and event.detail["restarts"] == 2
    assert (event.start, event.end, event.tags) == (t1, t2, ("BR01.TEMP",))


async def test_reconnect_drops_the_re_reported_values(plant, collector, mqtt_url, topic_prefix, tmp_path):
    async with FaultProxy("127.0.0.1", plant.port) as proxy:
        endpoint = f"opc.tcp://127.0.0.1:{proxy.port}/batchwire/"
        cfg = make_config(endpoint, mqtt_url, topic_prefix, tmp_path / "outbox")
        t1 = now_micros()
        async with EdgeAgent(cfg) as agent:
            await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
            await plant.write("BR01.TEMP", 30.0, utc(t1))
            await wait_until(lambda: occurrences(collector, "BR01.TEMP", t1, 30.0) == 1, what="value")
            connections = proxy.stats.connections
            proxy.reset_connections()
            # the loss is recorded, then the new subscription re-reports all three unchanged
            await wait_until(lambda: all(any(s.quality == BAD_NOT_CONNECTED for s, _ in collector.samples(t))
                                         for t in TAGS), what="connection-loss records")
            await wait_until(lambda: agent.stats()["suppressed_repeats"] == 3, what="re-reported values")
            assert proxy.stats.connections > connections
            t2 = now_micros()
            await plant.write("BR01.TEMP", 31.0, utc(t2))
            await wait_until(lambda: occurrences(collector, "BR01.TEMP", t2, 31.0) == 1, what="new value")
            assert occurrences(collector, "BR01.TEMP", t1, 30.0) == 1
            assert agent.stats()["downtime_pending"] is False  # a fresh outbox: no restart
        assert collector.of("event") == []
