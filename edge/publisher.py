"""One MQTT connection (paho-mqtt 2.x) as an async context manager.

``async with MqttLink(...) as link`` connects, waits for the CONNACK and the SUBACKs, and
hands out :meth:`MqttLink.publish`, whose future resolves on the broker's PUBACK. When the
connection drops, the link is over: pending publishes fail with :class:`ConnectionLost`,
``link.closed`` completes, and the caller reconnects by entering a new link. Paho's own
automatic reconnection is deliberately not used (its network loop runs in a thread of ours
that ends with the connection), so there is exactly one place where reconnecting happens.

Paho calls its callbacks on the network thread. They only hand the event over to the
asyncio loop (``call_soon_threadsafe``) and never raise: an exception in a paho callback
stops its network loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import ConnectionLost, PublishError

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class MqttLink:
    """A single connection to the broker. Not reusable: enter a new one to reconnect."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_insecure: bool = False,
        keepalive: int = 30,
        timeout: float = 10.0,
        inflight: int = 32,
        will: tuple[str, bytes] | None = None,
        subscriptions: tuple[str, ...] = (),
        on_message: MessageHandler | None = None,
    ):
        self.host, self.port = host, port
        self.timeout = timeout
        self.keepalive = keepalive
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}  # mid -> PUBACK/SUBACK future
        self._thread: threading.Thread | None = None
        self._stop_thread = threading.Event()
        self.closed: asyncio.Future[None] | None = None

        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=paho.MQTTv311, clean_session=True)
        if username:
            c.username_pw_set(username, password)
        if tls:
            # the broker's certificate is always verified (ca_file, else the system's CAs);
            # tls_insecure only skips matching its name against the host
            try:
                c.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file,
                          cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ValueError, ssl.SSLError) as err:
                raise PublishError(f"TLS settings unusable: {err}") from err
            if tls_insecure:
                c.tls_insecure_set(True)
        if will is not None:
            c.will_set(will[0], will[1], qos=1, retain=True)
        # paho's window must not be smaller than ours, or it queues behind our back
        c.max_inflight_messages_set(max(inflight, 1))
        c.connect_timeout = timeout
        c.on_connect = self._cb_connect
        c.on_disconnect = self._cb_disconnect
        c.on_publish = self._cb_publish
        c.on_subscribe = self._cb_subscribe
        c.on_message = self._cb_message
        self._client = c

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MqttLink:
        loop = self._loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        self.closed = loop.create_future()
        try:
            # paho's connect resolves the name and opens the socket synchronously
            await asyncio.wait_for(
                asyncio.to_thread(self._client.connect, self.host, self.port, self.keepalive),
                self.timeout + 1)
        except (OSError, asyncio.TimeoutError, ValueError) as err:
            raise PublishError(f"cannot connect to mqtt://{self.host}:{self.port}: {err!r}") from err
        self._thread = threading.Thread(target=self._network_loop, name="batchwire-mqtt", daemon=True)
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connack), self.timeout)
            for sub in self._subscriptions:
                rc, mid = self._client.subscribe(sub, qos=1)
                if rc != paho.MQTT_ERR_SUCCESS:
                    raise PublishError(f"subscribe to {sub!r} failed: {paho.error_string(rc)}")
                fut = self._pending[mid] = loop.create_future()
                await asyncio.wait_for(fut, self.timeout)
        except asyncio.TimeoutError as err:
            await self._shutdown()
            raise PublishError(f"mqtt://{self.host}:{self.port} did not answer within "
                               f"{self.timeout} s") from err
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self.closed is not None and not self.closed.done():
            try:
                self._client.disconnect()
                # let the network loop send DISCONNECT, so the broker does not publish the will
                await asyncio.wait_for(asyncio.shield(self.closed), 1.0)
            except Exception:  # noqa: BLE001 - already broken or slow; closing anyway
                pass
        self._stop_thread.set()
        if self._thread is not None:
            # join in a thread: the network loop may be in a select() for up to 0.2 s
            await asyncio.to_thread(self._thread.join, 5)
        try:
            self._client.socket() and self._client.socket().close()
        except Exception:  # noqa: BLE001
            pass
        self._fail_all(ConnectionLost("connection closed"))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def _network_loop(self) -> None:
        """Runs paho's network loop until the connection ends or the link is closed."""
        while not self._stop_thread.is_set():
            try:
                rc = self._client.loop(timeout=0.2)
            except Exception as err:  # noqa: BLE001 - report and end this connection
                self._post(self._lost, ConnectionLost(f"network loop failed: {err!r}"))
                return
            if rc != paho.MQTT_ERR_SUCCESS:
                self._post(self._lost, ConnectionLost(f"connection lost: {paho.error_string(rc)}"))
                return

    # ------------------------------------------------------------------ API

    @property
    def connected(self) -> bool:
        return self.closed is not None and not self.closed.done() and self._client.is_connected()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Queue a QoS 1 publish; the future completes on PUBACK or fails with
        :class:`ConnectionLost`. Raises :class:`ConnectionLost` when already down."""
        if self.closed is None or self.closed.done():
            raise ConnectionLost("not connected")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionLost(f"publish refused: {paho.error_string(info.rc)}")
        # Registered before any PUBACK can be handled: the callback reaches this loop via
        # call_soon_threadsafe, which cannot run before this synchronous method returns.
        fut = self._pending[info.mid] = self._loop.create_future()
        return fut

    async def publish_wait(self, topic: str, payload: bytes, *, retain: bool = False,
                           timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.publish(topic, payload, retain=retain), timeout or self.timeout)
        except asyncio.TimeoutError as err:
            raise PublishError(f"no PUBACK for {topic} within {timeout or self.timeout} s") from err

    # ------------------------------------------------------------------ paho callbacks

    def _post(self, fn, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass  # loop closing: nobody is waiting any more

    def _cb_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._post(self._connected, bool(reason_code.is_failure), str(reason_code))
        except Exception:  # noqa: BLE001 - never raise into paho
            log.exception("on_connect")

    def _cb_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._post(self._lost, ConnectionLost(f"disconnected: {reason_code}"))
        except Exception:  # noqa: BLE001
            log.exception("on_disconnect")

    def _cb_publish(self, client, userdata, mid, reason_code, properties) -> None:
        try:
            self._post(self._resolve, mid, bool(reason_code.is_failure), str(reason_code))
        except Exception:  # noqa: BLE001
            log.exception("on_publish")

    def _cb_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        try:
            failed = any(rc.is_failure for rc in reason_codes)
            self._post(self._resolve, mid, failed, ", ".join(str(rc) for rc in reason_codes))
        except Exception:  # noqa: BLE001
            log.exception("on_subscribe")

    def _cb_message(self, client, userdata, message) -> None:
        try:
            if self._on_message is not None:
                self._post(self._deliver, message.topic, bytes(message.payload))
        except Exception:  # noqa: BLE001
            log.exception("on_message")

    # ------------------------------------------------------------------ on the loop

    def _connected(self, failed: bool, reason: str) -> None:
        if self._connack is None or self._connack.done():
            return
        if failed:
            self._connack.set_exception(PublishError(f"broker refused the connection: {reason}"))
        else:
            self._connack.set_result(None)

    def _lost(self, err: ConnectionLost) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(err)
        self._fail_all(err)
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def _resolve(self, mid: int, failed: bool, reason: str) -> None:
        fut = self._pending.pop(mid, None)
        if fut is None or fut.done():
            return
        if failed:
            fut.set_exception(PublishError(f"broker rejected message {mid}: {reason}"))
        else:
            fut.set_result(None)

    def _deliver(self, topic: str, payload: bytes) -> None:
        try:
            self._on_message(topic, payload)
        except Exception:  # noqa: BLE001 - a bad message must not end the connection
            log.exception("handling message on %s", topic)

    def _fail_all(self, err: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be awaiting it any more
