"""MQTT helpers of the fault tests: a misbehaving relay between edge and historian, and an
independent witness of every data message an edge publishes.

:class:`Relay` lets the edge and the historian use different topic prefixes on one broker
and carries messages between them: edge -> historian (``data``, ``birth``, ``state``,
``event``) and historian -> edge (``ack``). It can deliver every data message ``copies``
times and shuffle data messages within a window, which is what a faulty network, a bridge
or a broker fail-over can do to a QoS 1 stream. Subscriptions use MQTT v5 *no local* so the
relay never receives what it publishes itself.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.contract import DataMessage, DecodeError, decode


def _client(broker: str, name: str) -> tuple[mqtt.Client, str, int]:
    parts = urlsplit(broker)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(0)
    return c, parts.hostname or "127.0.0.1", parts.port or 1883


class Relay:
    def __init__(self, broker: str, *, edge_prefix: str, historian_prefix: str, copies: int = 1,
                 shuffle_window: int = 1, max_hold: float = 1.0, seed: int = 0):
        self.edge_prefix = edge_prefix
        self.hist_prefix = historian_prefix
        self.copies = copies
        self.window = shuffle_window
        self.max_hold = max_hold
        self._rng = random.Random(seed)
        self._held: list[tuple[str, bytes]] = []
        self._held_since: float | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.data_in = 0
        self.data_out = 0
        self.displaced = 0  # data messages forwarded at another position than they arrived
        self._seq_in = 0
        self._order: list[int] = []
        c, host, port = _client(broker, "fault-relay")
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        self.client = c
        c.connect(host, port)
        c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("relay could not subscribe")
        self._flusher = threading.Thread(target=self._flush_loop, daemon=True, name="relay-flush")
        self._flusher.start()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        opts = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
        client.subscribe([(f"{self.edge_prefix}/v1/+/+/{k}", opts) for k in ("data", "birth", "state", "event")]
                         + [(f"{self.hist_prefix}/v1/+/+/ack", opts)])

    def _on_message(self, client, userdata, msg) -> None:
        try:
            if msg.topic.startswith(self.hist_prefix + "/"):
                client.publish(self.edge_prefix + msg.topic[len(self.hist_prefix):], msg.payload, qos=1)
                return
            out = self.hist_prefix + msg.topic[len(self.edge_prefix):]
            if not msg.topic.endswith("/data"):
                client.publish(out, msg.payload, qos=1, retain=bool(msg.retain))
                return
            with self._lock:
                self.data_in += 1
                self._held.append((out, bytes(msg.payload)))
                self._order.append(self._seq_in)
                self._seq_in += 1
                if self._held_since is None:
                    self._held_since = time.monotonic()
                if len(self._held) >= self.window:
                    self._release()
        except Exception as err:  # noqa: BLE001 - a paho callback must not raise
            print(f"relay: {err!r}")

    def _release(self) -> None:
        """With the lock held: forward what is held, shuffled, each ``copies`` times."""
        pairs = list(zip(self._order, self._held))
        if len(pairs) > 1:
            self._rng.shuffle(pairs)
        self.displaced += sum(1 for pos, (orig, _) in enumerate(pairs) if orig != self._order[pos])
        for _, (topic, payload) in pairs:
            for _ in range(self.copies):
                self.client.publish(topic, payload, qos=1)
                self.data_out += 1
        self._held, self._order, self._held_since = [], [], None

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                if self._held_since is not None and time.monotonic() - self._held_since >= self.max_hold:
                    self._release()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._held:
                self._release()
        self.client.loop_stop()
        self.client.disconnect()


class Witness:
    """Keeps the first copy of every data message seen on ``prefix`` (the edge's side)."""

    def __init__(self, broker: str, prefix: str):
        self.messages: dict[tuple[str, str, int], DataMessage] = {}
        self.copies = 0
        self.undecodable = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        c, host, port = _client(broker, "fault-witness")
        c.on_connect = lambda cl, *a: cl.subscribe(f"{prefix}/v1/+/+/data", qos=1)
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        self.client = c
        c.connect(host, port)
        c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("witness could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            m = decode(msg.payload)
        except DecodeError:
            with self._lock:
                self.undecodable += 1
            return
        if isinstance(m, DataMessage):
            with self._lock:
                self.copies += 1
                self.messages.setdefault((m.edge, m.session, m.seq), m)

    def samples(self) -> list[tuple[str, int, float]]:
        """Every sample of every distinct message, as (tag, ts, value), duplicates kept."""
        with self._lock:
            msgs = list(self.messages.values())
        return [(s.tag, s.ts, s.value) for m in msgs for s in m.samples]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
