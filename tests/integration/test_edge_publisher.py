"""MqttLink against real brokers: PUBACK futures, last will, refused connections, broker
restarts (a Mosquitto of the test's own, never the shared one)."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import pytest

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.contract.codec import encode
from edge.contract.messages import StateMessage, now_micros
from edge.errors import ConnectionLost, PublishError
from edge.publisher import MqttLink
from tests.conftest import free_port
from tests.integration.test_edge_fixtures import NAMESPACE, Collector, OpcUaPlant, utc, wait_until


def link_for(mqtt_url: str, **kw) -> MqttLink:
    u = urlsplit(mqtt_url)
    return MqttLink(host=u.hostname, port=u.port or 1883, client_id=f"bwtest-{uuid.uuid4().hex[:8]}",
                    timeout=5, **kw)


async def test_publish_resolves_on_puback_and_messages_reach_handler(mqtt_url, topic_prefix):
    got: list[tuple[str, bytes]] = []

    def handler(t, p):
        got.append((t, p))
        raise RuntimeError("a failing handler must not end the connection")

    async with link_for(mqtt_url, subscriptions=(f"{topic_prefix}/in",), on_message=handler) as link:
        await link.publish_wait(f"{topic_prefix}/in", b"one")
        await wait_until(lambda: len(got) == 1, what="message")
        futs = [link.publish(f"{topic_prefix}/in", b"%d" % i) for i in range(50)]
        await asyncio.wait_for(asyncio.gather(*futs), 10)
        await wait_until(lambda: len(got) == 51, what="all messages")
        assert link.connected
    assert not link.connected
    with pytest.raises(ConnectionLost):
        link.publish(f"{topic_prefix}/in", b"late")


async def test_last_will_on_abrupt_loss(mqtt_url, topic_prefix):
    collector = Collector(mqtt_url, topic_prefix)
    will = encode(StateMessage("e", "s", "S", "offline", now_micros()))
    try:
        link = link_for(mqtt_url, will=(f"{topic_prefix}/v1/s/e/state", will))
        await link.__aenter__()
        link._client.socket().close()  # the process "dies": no DISCONNECT packet
        await asyncio.wait_for(link.closed, 10)
        await link.__aexit__(None, None, None)
        await wait_until(lambda: any(m.state == "offline" for m in collector.of("state")), what="last will")
    finally:
        collector.close()


async def test_refused_connection_is_a_publish_error():
    with pytest.raises(PublishError):
        async with link_for(f"mqtt://127.0.0.1:{free_port()}"):
            pass


@pytest.fixture
def own_broker(tmp_path):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not shutil.which(exe):
        pytest.skip("mosquitto binary not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    class Broker:
        url = f"mqtt://127.0.0.1:{port}"
        proc: subprocess.Popen | None = None

        def start(self):
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)

        def stop(self):
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(10)

    b = Broker()
    b.start()
    yield b
    b.stop()


async def _broker_up(url):
    u = urlsplit(url)

    def up():
        import socket
        try:
            socket.create_connection((u.hostname, u.port), 0.5).close()
            return True
        except OSError:
            return False

    await wait_until(up, what="broker listening")


@pytest.mark.slow
async def test_agent_survives_broker_restart(own_broker, topic_prefix, tmp_path):
    await _broker_up(own_broker.url)
    plant = OpcUaPlant(free_port())
    await plant.start()
    collector = Collector(own_broker.url, topic_prefix)
    cfg = parse_config({
        "edge": {"id": "gw-r", "site": "s", "data_dir": str(tmp_path / "outbox")},
        "mqtt": {"url": own_broker.url, "topic_prefix": topic_prefix, "max_batch_delay": 0.1,
                 "reconnect_delay_max": 1},
        "opcua": [{"name": "br01", "endpoint": plant.endpoint, "namespace_uri": NAMESPACE,
                   "publishing_interval": 0.1, "queue_size": 100,
                   "tags": [{"name": "BR01.TEMP", "node": "s=BR01.TEMP"}]}],
    })
    try:
        async with EdgeAgent(cfg) as agent:
            await wait_until(lambda: agent.stats()["sources"]["br01"] and agent.stats()["connected"],
                             what="agent up")
            t0 = now_micros()
            for i in range(5):
                await plant.write("BR01.TEMP", float(i), utc(t0 + i))
            await wait_until(lambda: {0.0, 4.0} <= {s.value for s, _ in collector.samples("BR01.TEMP")},
                             what="data before outage")
            collector.close()
            own_broker.stop()
            await wait_until(lambda: not agent.stats()["connected"], what="disconnect noticed")
            for i in range(5, 10):
                await plant.write("BR01.TEMP", float(i), utc(t0 + i))
            await wait_until(lambda: agent.stats()["captured"] >= 11 and agent.stats()["buffered"] == 0,
                             what="captured during outage")
            own_broker.start()
            await _broker_up(own_broker.url)
            collector = Collector(own_broker.url, topic_prefix)
            await wait_until(lambda: {float(i) for i in range(5, 10)}
                             <= {s.value for s, _ in collector.samples("BR01.TEMP")},
                             timeout=30, what="data after outage")
            outage = [m for m in collector.data() if any(5.0 <= s.value < 10.0 for s in m.samples
                                                         if isinstance(s.value, float) and not math.isnan(s.value))]
            assert outage and all(m.historical for m in outage)
            assert any(m.state == "online" for m in collector.of("state"))
            assert collector.of("birth")  # birth again on the new connection
            assert agent.stats()["connections"] >= 2
    finally:
        collector.close()
        await plant.stop()
