"""The first birth carries the server's metadata; data waits for a birth declaring its tags;
changed metadata (a server restarted with another configuration) is declared before the data
that depends on it."""

from __future__ import annotations

import pytest
from asyncua import ua

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.contract.messages import BirthMessage, DataMessage, now_micros
from edge.contract.quality import BAD_NOT_CONNECTED
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import NAMESPACE, OpcUaPlant, utc, wait_until

SITE, EDGE = "site-a", "gw-birth"


def make_config(endpoint, mqtt_url, prefix, data_dir, **opcua):
    return parse_config({
        "edge": {"id": EDGE, "site": SITE, "data_dir": str(data_dir)},
        "mqtt": {"url": mqtt_url, "topic_prefix": prefix, "client_id": f"{prefix}-edge",
                 "max_batch_delay": 0.05, "ack_timeout": 3600},
        "opcua": [{
            "name": "br01", "endpoint": endpoint, "namespace_uri": NAMESPACE,
            "publishing_interval": 0.05, "queue_size": 100, **opcua,
            "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"},
                     {"name": "BR01.COUNT", "node": "s=BR01.COUNT"}],
        }],
    })


def ordered(collector) -> list[tuple[str, object]]:
    """(kind, message) in arrival order."""
    with collector._lock:
        return [(t.rsplit("/", 1)[1], m) for t, m, _ in collector.messages]


def first_index(seq, pred) -> int:
    return next(i for i, x in enumerate(seq) if pred(x))


def carries(msg, tag, values=None) -> bool:
    return isinstance(msg, DataMessage) and any(
        s.tag == tag and (values is None or s.value in values) for s in msg.samples)


async def test_first_birth_has_the_servers_metadata(collector, mqtt_url, topic_prefix, tmp_path):
    plant = OpcUaPlant(free_port())
    await plant.start()
    try:
        cfg = make_config(plant.endpoint, mqtt_url, topic_prefix, tmp_path / "o")
        async with EdgeAgent(cfg) as agent:
            await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
            await plant.write("BR01.COUNT", 42, utc(now_micros()))
            await wait_until(lambda: any(carries(m, "BR01.COUNT", {42}) for m in collector.data()),
                             what="data")
            assert agent.stats()["births"] == 1
    finally:
        await plant.stop()
    first = collector.of("birth")[0]
    info = {t.name: t for t in first.tags}
    assert info["BR01.COUNT"].datatype == "int"  # read from the server, not the default float
    assert (info["BR01.COUNT"].unit, info["BR01.TEMP"].unit) == ("cells", "degC")
    assert (info["BR01.TEMP"].low, info["BR01.TEMP"].high) == (0.0, 50.0)
    assert info["BR01.TEMP"].datatype == "float"


async def test_data_of_an_unreached_server_waits_for_its_birth(collector, mqtt_url, topic_prefix, tmp_path):
    port = free_port()
    cfg = make_config(f"opc.tcp://127.0.0.1:{port}/batchwire/", mqtt_url, topic_prefix, tmp_path / "o",
                      metadata_timeout=0.3)
    plant = OpcUaPlant(port)
    async with EdgeAgent(cfg) as agent:
        # the server is down: the first birth (after metadata_timeout) declares nothing of it,
        # and its outage samples stay in the outbox
        await wait_until(lambda: collector.of("birth"), what="first birth")
        assert collector.of("birth")[0].tags == ()
        await wait_until(lambda: agent.stats()["held"] >= 1, what="held outage samples")
        assert not any(carries(m, "BR01.TEMP") for m in collector.data())
        assert agent.stats()["metadata_pending"] == ["BR01.COUNT", "BR01.TEMP"]
        await plant.start()
        try:
            await wait_until(lambda: any(carries(m, "BR01.TEMP") for m in collector.data()),
                             timeout=30, what="held data published")
            await wait_until(lambda: agent.stats()["held"] == 0, what="nothing held")
        finally:
            await plant.stop()
    msgs = ordered(collector)
    declared = first_index(msgs, lambda km: km[0] == "birth" and
                           {t.name for t in km[1].tags} == {"BR01.TEMP", "BR01.COUNT"})
    first_data = first_index(msgs, lambda km: carries(km[1], "BR01.TEMP"))
    assert declared < first_data
    outage = msgs[first_data][1]
    assert any(s.tag == "BR01.TEMP" and s.quality == BAD_NOT_CONNECTED for s in outage.samples)
    assert msgs[declared][1].tags and {t.name: t for t in msgs[declared][1].tags}["BR01.COUNT"].datatype == "int"


async def test_changed_metadata_is_declared_before_the_data_that_depends_on_it(
        collector, mqtt_url, topic_prefix, tmp_path):
    port = free_port()
    cfg = make_config(f"opc.tcp://127.0.0.1:{port}/batchwire/", mqtt_url, topic_prefix, tmp_path / "o")
    plant = OpcUaPlant(port)
    await plant.start()
    async with EdgeAgent(cfg) as agent:
        await wait_until(lambda: agent.stats()["sources"]["br01"], what="OPC UA subscription")
        await plant.write("BR01.TEMP", 37.0, utc(now_micros()))
        await wait_until(lambda: any(carries(m, "BR01.TEMP", {37.0}) for m in collector.data()), what="data")
        connections = agent.sources[0].connections
        await plant.stop()
        # the server comes back reconfigured: another unit, another data type
        plant = OpcUaPlant(port, units={"BR01.TEMP": "K"}, count_type=ua.VariantType.Double)
        await plant.start()
        try:
            await wait_until(lambda: agent.sources[0].connections > connections and agent.sources[0].connected,
                             timeout=30, what="reconnected")
            await plant.write("BR01.TEMP", 310.15, utc(now_micros()))
            await plant.write("BR01.COUNT", 1.5, utc(now_micros()))
            await wait_until(lambda: any(carries(m, "BR01.COUNT", {1.5}) for m in collector.data())
                             and any(carries(m, "BR01.TEMP", {310.15}) for m in collector.data()),
                             what="data after the change")
        finally:
            await plant.stop()
    msgs = ordered(collector)
    redeclared = first_index(msgs, lambda km: km[0] == "birth" and
                             {t.name: t.unit for t in km[1].tags}.get("BR01.TEMP") == "K")
    birth = msgs[redeclared][1]
    assert isinstance(birth, BirthMessage)
    assert {t.name: t.datatype for t in birth.tags}["BR01.COUNT"] == "float"
    assert redeclared < first_index(msgs, lambda km: carries(km[1], "BR01.TEMP", {310.15}))
    assert redeclared < first_index(msgs, lambda km: carries(km[1], "BR01.COUNT", {1.5}))
