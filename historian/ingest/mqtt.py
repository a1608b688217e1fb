"""The paho-mqtt side of ingest: one MQTT v5 connection, manual acknowledgements.

Flow control: the client announces a *Receive Maximum*, so the broker keeps at most that
many unacknowledged QoS 1 messages in flight to this worker; since a message is
acknowledged only after its database commit, a slow database stops the broker from sending
(memory stays bounded) instead of filling a queue here.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


class BrokerUrlError(ValueError):
    """The broker URL is not mqtt://[user[:password]@]host[:port] (or mqtts://)."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise BrokerUrlError(f"broker URL {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise BrokerUrlError(f"broker URL {url!r}: {err}") from err
    return BrokerAddress(parts.hostname, port, tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


@dataclass(frozen=True, slots=True)
class AckHandle:
    """Identifies a received message for its PUBACK; valid only on the connection
    (``generation``) it arrived on."""

    mid: int
    qos: int
    generation: int


#: Supported MQTT protocol versions for ingest ("5" is needed for Receive Maximum and is
#: the default; "3.1.1" for brokers that do not speak MQTT 5).
MQTT_PROTOCOLS = ("5", "3.1.1")

OnMessage = Callable[[str, bytes, AckHandle], None]


class MqttLink:
    """Connects, (re)subscribes on every connect, hands each message to ``on_message`` from
    paho's network thread, and sends PUBACKs and publishes when told to."""

    def __init__(self, broker_url: str, client_id: str, subscriptions: list[str], on_message: OnMessage,
                 *, receive_maximum: int = 100, persistent_session: bool = False, keepalive: int = 30,
                 protocol: str = "5"):
        if protocol not in MQTT_PROTOCOLS:
            raise ValueError(f"MQTT protocol must be one of {', '.join(MQTT_PROTOCOLS)}, got {protocol!r}")
        self.address = parse_broker_url(broker_url)
        self.protocol = protocol
        self.subscriptions = subscriptions
        self._on_message = on_message
        self._receive_maximum = receive_maximum
        self._persistent = persistent_session
        self._keepalive = keepalive
        self.generation = 0
        self.connected = threading.Event()
        if protocol == "5":
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                            protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            # MQTT 3.1.1 (brokers without v5, such as the embedded demo broker): no Receive
            # Maximum, so the bounded hand-off queue blocking paho's thread is the backpressure
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                            protocol=mqtt.MQTTv311, clean_session=not persistent_session,
                            manual_ack=True)
        if self.address.username:
            c.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            c.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_subscribe = self._handle_subscribe
        c.on_message = self._handle_message
        self.client = c

    def start(self) -> None:
        if self.protocol != "5":
            self.client.connect_async(self.address.host, self.address.port, self._keepalive)
            self.client.loop_start()
            return
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = self._receive_maximum
        # a persistent session lets the broker re-deliver what this worker had not acknowledged
        props.SessionExpiryInterval = 3600 if self._persistent else 0
        self.client.connect_async(self.address.host, self.address.port, self._keepalive,
                                  clean_start=not self._persistent, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, handle: AckHandle) -> None:
        # a PUBACK on a newer connection would acknowledge a different packet with the same id
        if handle.qos > 0 and handle.generation == self.generation:
            self.client.ack(handle.mid, handle.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos)

    # ------------------------------------------------------------------ paho callbacks
    # An exception escaping a callback stops paho's network loop: every callback guards itself.

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                log.warning("broker refused the connection: %s", reason_code)
                return
            self.generation += 1
            if self.protocol == "5":
                client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.subscriptions])
            else:
                client.subscribe([(f, 1) for f in self.subscriptions])
            log.info("connected to %s:%d, subscribed to %s", self.address.host, self.address.port,
                     ", ".join(self.subscriptions))
        except Exception:  # noqa: BLE001
            log.exception("on_connect failed")

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # "connected" means subscribed: only then can nothing published from now on be missed
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", ", ".join(failed))
        else:
            self.connected.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("disconnected from the broker: %s", reason_code)

    def _handle_message(self, client, userdata, message) -> None:
        try:
            self._on_message(message.topic, message.payload,
                             AckHandle(message.mid, message.qos, self.generation))
        except Exception:  # noqa: BLE001
            log.exception("handling a message from %s failed", message.topic)
