"""The shipped broker ACL (deploy/mosquitto/batchwire.acl) on a real Mosquitto: an edge may
speak only for itself, the historian may read everything and write acknowledgements."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.faults.services import free_port, wait_port

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "batchwire.acl"

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto") or not shutil.which("mosquitto_passwd"),
                                reason="mosquitto and mosquitto_passwd are needed")


@pytest.fixture
def broker(tmp_path):
    passwd = tmp_path / "passwd"
    for user in ("gw-01", "gw-02", "historian"):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if user == "gw-01" else []),
                        str(passwd), user, f"pw-{user}"], check=True, capture_output=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}",
             f"acl_file {ACL}", "persistence false", f"log_dest file {tmp_path}/mosquitto.log"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Client:
    def __init__(self, port: int, user: str, subscribe: list[str] = ()):
        self.received: list[tuple[str, bytes]] = []
        self.got = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, f"pw-{user}")
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if subscribe:
            self.c.subscribe([(f, 1) for f in subscribe])
            assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, msg):
        self.received.append((msg.topic, msg.payload))
        if msg.payload == b"sentinel":
            self.got.set()

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_edges_speak_only_for_themselves_and_the_historian_reads_all(broker):
    historian = Client(broker, "historian",
                       subscribe=["batchwire/v1/+/+/data", "batchwire/v1/+/+/ack"])
    gw1 = Client(broker, "gw-01", subscribe=["batchwire/v1/site-a/gw-01/ack"])
    gw2 = Client(broker, "gw-02")
    try:
        # an edge impersonating another is silently dropped by the broker
        gw2.publish("batchwire/v1/site-a/gw-01/data")
        # a sentinel published afterwards on the same connection proves ordering: if the
        # historian gets the sentinel, the forbidden message had its chance to arrive first
        gw2.publish("batchwire/v1/site-a/gw-02/data", b"sentinel")
        assert historian.got.wait(10)
        assert historian.received == [("batchwire/v1/site-a/gw-02/data", b"sentinel")]

        # an edge may not publish acknowledgements; the historian may (and, having no read
        # permission on acks, does not receive them)
        gw1.publish("batchwire/v1/site-a/gw-01/ack", b"forged")
        historian.publish("batchwire/v1/site-a/gw-01/ack", b"sentinel")
        assert gw1.got.wait(10)
        assert gw1.received == [("batchwire/v1/site-a/gw-01/ack", b"sentinel")]
    finally:
        for c in (historian, gw1, gw2):
            c.close()
