"""Servers and an MQTT collector for the edge agent's integration tests (helpers, no tests)."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
from asyncua import Server, ua
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract.codec import decode, encode
from edge.contract.messages import AckMessage, DataMessage, now_micros
from edge.contract.topics import topic
from tests.conftest import free_port

NAMESPACE = "urn:batchwire:sim"


async def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class OpcUaPlant:
    """A small asyncua server: BR01.TEMP/PH (Double) and BR01.COUNT (Int32 by default) with
    units and ranges, and context strings. ``units`` / ``count_type`` change the metadata
    (a server restarted with another configuration)."""

    def __init__(self, port: int, *, units: dict[str, str] | None = None,
                 count_type: ua.VariantType = ua.VariantType.Int32):
        self.port = port
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/batchwire/"
        self.server = Server()
        self.nodes: dict[str, object] = {}
        self.units = {"BR01.TEMP": "degC", "BR01.PH": "pH", "BR01.COUNT": "cells", **(units or {})}
        self.count_type = count_type

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        await self.configure(s)
        idx = await s.register_namespace(NAMESPACE)
        obj = await s.nodes.objects.add_object(idx, "BR01")
        count = 0.0 if self.count_type in (ua.VariantType.Double, ua.VariantType.Float) else 0
        for name, low, high, value, vt in (("BR01.TEMP", 0.0, 50.0, 36.5, ua.VariantType.Double),
                                           ("BR01.PH", 6.0, 8.0, 7.0, ua.VariantType.Double),
                                           ("BR01.COUNT", 0.0, 1e9, count, self.count_type)):
            unit = self.units[name]
            var = await obj.add_variable(ua.NodeId(name, idx), name, ua.Variant(value, vt))
            await var.write_attribute(ua.AttributeIds.Description,
                                      ua.DataValue(ua.Variant(ua.LocalizedText(f"{name} measured"))))
            await var.add_property(idx, "EngineeringUnits",
                                   ua.EUInformation(DisplayName=ua.LocalizedText(unit)))
            await var.add_property(idx, "EURange", ua.Range(Low=low, High=high))
            self.nodes[name] = var
        for name in ("BR01.BATCH_ID", "BR01.PHASE", "BR01.RECIPE"):
            self.nodes[name] = await obj.add_variable(ua.NodeId(name, idx), name,
                                                      ua.Variant("", ua.VariantType.String))
        await s.start()

    async def configure(self, server: Server) -> None:
        """Hook for subclasses: endpoints, security, users (before the server starts)."""

    async def stop(self) -> None:
        await self.server.stop()

    async def write(self, name: str, value, ts: datetime) -> None:
        if isinstance(value, str):
            vt = ua.VariantType.String
        elif name == "BR01.COUNT":
            vt = self.count_type
        else:
            vt = ua.VariantType.Double
        await self.nodes[name].write_value(
            ua.DataValue(ua.Variant(value, vt), SourceTimestamp=ts, ServerTimestamp=ts))


@pytest.fixture
async def opcua_plant():
    """A test OPC UA server on a free port (see :class:`OpcUaPlant`)."""
    p = OpcUaPlant(free_port())
    await p.start()
    yield p
    await p.stop()


def utc(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


class Collector:
    """Subscribes to every topic of one prefix and decodes what arrives (test side)."""

    def __init__(self, mqtt_url: str, prefix: str):
        url = urlsplit(mqtt_url)
        self.prefix = prefix
        self.messages: list[tuple[str, object, bool]] = []  # (topic, message, retained)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        c = self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bwtest-{uuid.uuid4().hex[:8]}")
        c.on_connect = lambda *a: c.subscribe(f"{prefix}/#", qos=1)
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        c.connect(url.hostname, url.port or 1883)
        c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            m = decode(msg.payload)
        except Exception as err:  # noqa: BLE001 - recorded and asserted on by the tests
            with self._lock:
                self.errors.append(f"{msg.topic}: {err}")
            return
        with self._lock:
            self.messages.append((msg.topic, m, bool(msg.retain)))

    def of(self, kind: str) -> list:
        with self._lock:
            return [m for t, m, _ in self.messages if t.endswith("/" + kind)]

    def data(self) -> list[DataMessage]:
        return self.of("data")

    def samples(self, tag: str) -> list:
        """(sample, message) pairs of one tag, first arrival of each message only."""
        seen, out = set(), []
        for m in self.data():
            if (m.session, m.seq) in seen:
                continue
            seen.add((m.session, m.seq))
            out += [(s, m) for s in m.samples if s.tag == tag]
        return out

    def ack(self, site: str, edge: str, session: str, ranges, events=()) -> None:
        payload = encode(AckMessage(edge=edge, session=session, ranges=tuple(ranges), sent=now_micros(),
                                    events=tuple(events)))
        self.client.publish(topic("ack", site, edge, self.prefix), payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class ModbusDevice:
    """A minimal Modbus TCP server written for the tests: function codes 1-4 from dicts,
    exception 2 for addresses it does not have, and a switch to stop answering."""

    def __init__(self, port: int, unit_id: int = 1):
        self.port = port
        self.unit_id = unit_id
        self.holding: dict[int, int] = {}
        self.input: dict[int, int] = {}
        self.coils: dict[int, bool] = {}
        self.discrete: dict[int, bool] = {}
        self.requests = 0
        self.silent = False
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):  # a stopped device also drops its connections
                w.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, pid, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                if self.silent:
                    continue
                fc, addr, count = struct.unpack(">BHH", pdu[:5])
                table = {1: self.coils, 2: self.discrete, 3: self.holding, 4: self.input}.get(fc)
                if table is None or any(a not in table for a in range(addr, addr + count)):
                    body = struct.pack(">BB", fc | 0x80, 2 if table is not None else 1)
                elif fc in (1, 2):
                    bits = [table[a] for a in range(addr, addr + count)]
                    packed = bytearray((count + 7) // 8)
                    for i, b in enumerate(bits):
                        if b:
                            packed[i // 8] |= 1 << (i % 8)
                    body = struct.pack(">BB", fc, len(packed)) + bytes(packed)
                else:
                    regs = [table[a] for a in range(addr, addr + count)]
                    body = struct.pack(">BB", fc, 2 * count) + struct.pack(f">{count}H", *regs)
                writer.write(struct.pack(">HHHB", tid, pid, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def make_app_certificate(directory, name: str, uri: str, *, server: bool) -> tuple[str, str]:
    """A self-signed OPC UA application certificate and its key (PEM files); returns the
    paths (certificate, private key)."""
    from pathlib import Path

    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {"organizationName": "batchwire tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")], [usage], days=2)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return str(cert_path), str(key_path)
