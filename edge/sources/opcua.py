"""OPC UA source: one asyncua client subscription per configured server.

Each connection is one ``async with Client(...)``; reconnecting is a loop around it with
exponential backoff. Tag nodes and context nodes (batch, phase, recipe) are monitored in one
subscription with a queue size > 1, so values changing faster than the publishing interval
are all delivered (asyncua's default queue of 1 keeps only the latest), and a sampling
interval of 0 (report each change, not a periodic sample). The parameters the server revised
are checked: a smaller queue than configured is logged as a warning naming the setting.

A monitored item whose queue overflowed on the server (the client fell more than
``queue_size`` changes behind) has lost its oldest values; the server says so with the
Overflow InfoBit in the StatusCode of the next value. That StatusCode is kept as the sample's
quality, and the source counts and logs it (``overflows``), so such a gap is never silent.

A sample's time is the value's SourceTimestamp (when the device measured it); failing that
the ServerTimestamp, failing that the local clock. Its quality is the StatusCode as sent.
When the connection is lost every tag gets one sample without a value and quality
``BadNotConnected``, so the outage is in the record, not only in a log. The connection counts
as lost when the server does not answer a request, or the client's periodic health probe,
within ``timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies

from edge.config import OpcUaSource as OpcUaSettings
from edge.contract.messages import TagInfo, now_micros, to_micros
from edge.errors import SourceError
from edge.reading import ContextChange, Reading, Sink
from edge.sources import quality

log = logging.getLogger(__name__)

#: StatusCode InfoType "DataValue" (bits 10-11 = 01) and its Overflow InfoBit (bit 7), Part 4 7.39.
_INFO_TYPE_MASK, _INFO_TYPE_DATAVALUE, _OVERFLOW = 0x0C00, 0x0400, 0x0080

_INT_TYPES = {ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
              ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64}
_FLOAT_TYPES = {ua.VariantType.Float, ua.VariantType.Double}
_TEXT_TYPES = {ua.VariantType.String, ua.VariantType.LocalizedText, ua.VariantType.QualifiedName,
               ua.VariantType.DateTime, ua.VariantType.Guid, ua.VariantType.NodeId}


def datatype_of(vt: ua.VariantType) -> str:
    """The contract data type for an OPC UA variant type."""
    if vt == ua.VariantType.Boolean:
        return "bool"
    if vt in _INT_TYPES:
        return "int"
    if vt in _TEXT_TYPES:
        return "string"
    return "float"


def application_uri_of(cert_path) -> str | None:
    """The application URI in a certificate's subjectAltName (None: there is none)."""
    from cryptography import x509

    data = open(cert_path, "rb").read()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def der_certificate(data: bytes) -> bytes:
    """A certificate file's content (PEM or DER) as DER."""
    if b"-----BEGIN" not in data:
        return data
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)


def first_der(chain: bytes) -> bytes:
    """The first certificate of a DER chain (servers may send their chain concatenated)."""
    if len(chain) < 2 or chain[0] != 0x30:
        return chain
    n = chain[1]
    if n < 0x80:
        return chain[: 2 + n]
    k = n & 0x7F
    return chain[: 2 + k + int.from_bytes(chain[2 : 2 + k], "big")]


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:16]


def plain_value(v: Any) -> Any:
    """A sample value the contract can carry (number, string, bool or None)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, ua.LocalizedText):
        return v.Text
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def overflowed(code: int) -> bool:
    """Whether a value's StatusCode says its monitored item's queue overflowed just before it
    (values between the previous notification and this one were discarded by the server)."""
    return code & _INFO_TYPE_MASK == _INFO_TYPE_DATAVALUE and bool(code & _OVERFLOW)


def timestamp_of(dv: ua.DataValue) -> int:
    for ts in (dv.SourceTimestamp, dv.ServerTimestamp):
        if ts is not None:
            return to_micros(ts)
    return now_micros()


def _split_nsu(node: str) -> tuple[str | None, str]:
    if node.startswith("nsu="):
        uri, _, ident = node[4:].partition(";")
        return uri, ident
    return None, node


class OpcUaSource:
    """Acquires the configured tags and context of one OPC UA server."""

    kind = "opcua"

    def __init__(self, settings: OpcUaSettings):
        self.settings = settings
        self.name = settings.name
        self.connected = False
        self.connections = 0
        self.attempts = 0  # connection attempts, successful or not
        self.last_error: str | None = None
        #: What the server granted on the last connect: the smallest monitored-item queue and
        #: the longest sampling interval (ms) over the monitored nodes (None before a connect).
        self.revised_queue_size: int | None = None
        self.revised_sampling_interval: float | None = None
        #: Values the server reported after discarding older ones of the same node (the
        #: Overflow InfoBit), over this source's lifetime, in total and per tag.
        self.overflows = 0
        self.overflows_by_tag: dict[str, int] = {}
        self._unit = settings.context.unit if settings.context else None
        #: The agent's first birth waits up to this long for the server's metadata.
        self.metadata_timeout = settings.metadata_timeout
        #: Whether :meth:`tags` is final. Otherwise the server fills in what the configuration
        #: leaves open, reported through ``sink.metadata`` on every connect; until the first
        #: report the agent neither declares these tags nor publishes their data.
        self.metadata_known = all(
            t.datatype is not None and t.unit is not None and t.description is not None
            and t.low is not None and t.high is not None for t in settings.tags)

    # ------------------------------------------------------------------ declarations

    def _source_address(self, node: str) -> str:
        uri, ident = _split_nsu(node)
        if node.startswith(("ns=", "nsu=")):
            return f"opcua:{node}"
        return f"opcua:nsu={self.settings.namespace_uri};{ident}"

    def tags(self) -> list[TagInfo]:
        """What the configuration says about the tags (the server may fill in the rest)."""
        return [
            TagInfo(name=t.name, datatype=t.datatype or "float", unit=t.unit, description=t.description,
                    source=self._source_address(t.node), low=t.low, high=t.high)
            for t in self.settings.tags
        ]

    def units(self) -> list[str]:
        return [self._unit] if self._unit else []

    # ------------------------------------------------------------------ running

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Acquire until ``stop`` is set, reconnecting with backoff."""
        delay = 1.0
        down_reported = False
        while not stop.is_set():
            self.attempts += 1
            try:
                await self._session(sink, stop)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure: report, back off, retry
                self.last_error = f"{err!r}"
                log.warning("OPC UA source %s: %r", self.name, err)
            was_connected, self.connected = self.connected, False
            if stop.is_set():
                break
            if was_connected or not down_reported:
                self._report_down(sink)
                down_reported = True
            if was_connected:
                delay = 1.0
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self.settings.reconnect_delay_max)

    def _report_down(self, sink: Sink) -> None:
        ts = now_micros()
        q = quality.not_connected()
        for t in self.settings.tags:
            sink.reading(Reading(t.name, ts, None, q, self._unit))

    async def _resolve(self, client: Client, node: str) -> ua.NodeId:
        uri, ident = _split_nsu(node)
        if node.startswith("ns="):
            return ua.NodeId.from_string(node)
        uri = uri or self.settings.namespace_uri
        try:
            idx = await client.get_namespace_index(uri)
        except ValueError as err:
            raise SourceError(f"namespace {uri!r} is not on {self.settings.endpoint}") from err
        return ua.NodeId.from_string(f"ns={idx};{ident}")

    async def _session(self, sink: Sink, stop: asyncio.Event) -> None:
        s = self.settings
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            log.warning("OPC UA source %s: connection lost: %s", self.name, exc)
            lost.set()

        # asyncua probes the server every ``watchdog_intervall`` and declares the connection
        # lost when a probe is not answered within that same time (1 s by default). A server
        # busy for a second (a large publish, a loaded PLC) then cost a reconnect and every
        # change until the new subscription: measured, that was the loss seen with several
        # sessions. A probe gets the same time as any other request.
        client = Client(s.endpoint, timeout=s.timeout, watchdog_intervall=s.timeout)
        client.connection_lost_callback = on_lost
        try:
            await self._secure(client)
            async with client:
                tag_nodes = {}
                for t in s.tags:
                    tag_nodes[await self._resolve(client, t.node)] = t.name
                ctx_nodes = {}
                if s.context:
                    for field in ("batch", "phase", "recipe"):
                        node = getattr(s.context, field)
                        if node:
                            ctx_nodes[await self._resolve(client, node)] = field
                await self._read_metadata(client, tag_nodes, sink)
                handler = _Handler(self, sink, tag_nodes, ctx_nodes)
                sub = await client.create_subscription(s.publishing_interval * 1000, handler)
                nodes = [client.get_node(n) for n in dict.fromkeys([*tag_nodes, *ctx_nodes])]
                await self._monitor(sub, nodes)
                # connected means: monitoring, so every later change will be delivered
                self.connected = True
                self.connections += 1
                log.info("OPC UA source %s monitoring %d nodes on %s", self.name, len(nodes), s.endpoint)
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
                if lost.is_set():
                    raise SourceError("connection lost")
        except (OSError, asyncio.TimeoutError, ua.UaError) as err:
            raise SourceError(f"{s.endpoint}: {err!r}") from err

    async def _monitor(self, sub, nodes: list) -> None:
        """Monitor ``nodes`` (sampling interval 0, the configured queue) and check what the
        server granted. asyncua's ``subscribe_data_change`` does not return the revised
        parameters, so the session's CreateMonitoredItems results are captured on the way."""
        s = self.settings
        session = sub.server
        granted: list[ua.MonitoredItemCreateResult] = []
        create = session.create_monitored_items

        async def capture(params):
            results = await create(params)
            granted.extend(results)
            return results

        session.create_monitored_items = capture
        try:
            await sub.subscribe_data_change(nodes, queuesize=s.queue_size, sampling_interval=0.0)
        finally:
            del session.create_monitored_items          # the class's method again
        ok = [r for r in granted if r.StatusCode.is_good()]
        for node, r in zip(nodes, granted):
            if not r.StatusCode.is_good():
                log.warning("OPC UA source %s: cannot monitor %s: %s", self.name, node, r.StatusCode)
        if not ok:
            return
        self.revised_queue_size = min(r.RevisedQueueSize for r in ok)
        self.revised_sampling_interval = max(r.RevisedSamplingInterval for r in ok)
        if self.revised_queue_size < s.queue_size:
            log.warning("OPC UA source %s: queue_size: %s granted a queue of %d (of %d requested): values "
                        "are lost when more than that change between two publishes", self.name, s.endpoint,
                        self.revised_queue_size, s.queue_size)
        if self.revised_sampling_interval > s.publishing_interval * 1000:
            log.warning("OPC UA source %s: %s samples every %g ms, slower than publishing_interval: "
                        "changes between two samples are not seen", self.name, s.endpoint,
                        self.revised_sampling_interval)

    def _overflowed(self, tag: str) -> None:
        self.overflows += 1
        n = self.overflows_by_tag[tag] = self.overflows_by_tag.get(tag, 0) + 1
        if n == 1 or n % 100 == 0:
            log.warning("OPC UA source %s: %s lost values (server queue overflow, %d time(s)): the client "
                        "falls behind by more than queue_size (%d) changes", self.name, tag, n,
                        self.settings.queue_size)

    async def _secure(self, client: Client) -> None:
        """Apply the configured security policy (with the server certificate pinned: asyncua
        then refuses a server presenting another one) and user identity."""
        s = self.settings
        if s.security_policy != "None":
            policy = getattr(security_policies, "SecurityPolicy" + s.security_policy.replace("_", ""))
            mode = getattr(ua.MessageSecurityMode, s.security_mode or "SignAndEncrypt")
            uri = application_uri_of(s.certificate)
            if uri:  # servers check that the client's certificate names its application
                client.application_uri = uri
            await self._check_pinned(policy.URI, mode)
            try:
                await client.set_security(policy, str(s.certificate), str(s.private_key),
                                          server_certificate=str(s.server_certificate), mode=mode)
            except (OSError, ValueError, TypeError) as err:
                raise SourceError(f"{s.name}: security settings unusable: {err}") from err
        if s.username:
            client.set_user(s.username)
            secret = s.secret
            if secret is not None:
                client.set_password(secret)

    async def _check_pinned(self, policy_uri: str, mode: ua.MessageSecurityMode) -> None:
        """Say clearly why a secured connection will fail: compare the certificate the
        server lists for this policy and mode (GetEndpoints is open without security) with the
        pinned one. Only a diagnosis: the protection is the pinned certificate in the secure
        channel itself, which an impostor cannot complete (it would just time out)."""
        s = self.settings
        probe = Client(s.endpoint, timeout=s.timeout)
        endpoints = await probe.connect_and_get_server_endpoints()
        offered = [e for e in endpoints if e.SecurityPolicyUri == policy_uri and e.SecurityMode == mode]
        if not offered:
            raise SourceError(f"{s.endpoint} offers no endpoint with security_policy "
                              f"{s.security_policy!r} and security_mode {mode.name!r}")
        pinned = der_certificate(open(s.server_certificate, "rb").read())
        presented = first_der(offered[0].ServerCertificate or b"")
        if presented != pinned:
            raise SourceError(f"{s.endpoint} presents certificate sha256:{_fingerprint(presented)}, not the "
                              f"pinned server_certificate {s.server_certificate} (sha256:{_fingerprint(pinned)}): "
                              "refused")

    async def _read_metadata(self, client: Client, tag_nodes: dict, sink: Sink) -> None:
        """Fill in what the configuration left open from the server's own description:
        EngineeringUnits, EURange, Description, DataType."""
        configured = {t.name: t for t in self.settings.tags}
        infos = []
        for node_id, name in tag_nodes.items():
            t = configured[name]
            node = client.get_node(node_id)
            unit, low, high, desc, dtype = t.unit, t.low, t.high, t.description, t.datatype
            try:
                if dtype is None:
                    dtype = datatype_of(await node.read_data_type_as_variant_type())
                if desc is None:
                    text = (await node.read_description()).Text
                    desc = text or None
                if unit is None or low is None or high is None:
                    for prop in await node.get_properties():
                        bname = (await prop.read_browse_name()).Name
                        if bname == "EngineeringUnits" and unit is None:
                            eu = await prop.read_value()
                            unit = (eu.DisplayName.Text if eu and eu.DisplayName else None) or None
                        elif bname == "EURange" and (low is None or high is None):
                            rng = await prop.read_value()
                            if rng is not None:
                                low = rng.Low if low is None else low
                                high = rng.High if high is None else high
            except (ua.UaError, asyncio.TimeoutError, AttributeError) as err:
                log.warning("OPC UA source %s: metadata of %s incomplete: %s", self.name, name, err)
            infos.append(TagInfo(name=name, datatype=dtype or "float", unit=unit, description=desc,
                                 source=self._source_address(t.node), low=low, high=high))
        self.metadata_known = True
        sink.metadata(infos)


class _Handler:
    """asyncua subscription handler: turns notifications into readings and context changes.
    asyncua logs and swallows handler exceptions; still, nothing here should raise."""

    def __init__(self, source: OpcUaSource, sink: Sink, tag_nodes: dict, ctx_nodes: dict):
        self._source = source
        self._sink = sink
        self._tags = tag_nodes
        self._ctx = ctx_nodes
        self._unit = source._unit

    def datachange_notification(self, node, val, data) -> None:
        try:
            dv: ua.DataValue = data.monitored_item.Value
            ts = timestamp_of(dv)
            code = quality.opcua_status(dv.StatusCode.value if dv.StatusCode is not None else 0)
            nid = node.nodeid
            name = self._tags.get(nid)
            if name is not None:
                self._sink.reading(Reading(name, ts, plain_value(val), code, self._unit))
                if overflowed(code):
                    self._source._overflowed(name)
            field = self._ctx.get(nid)
            if field is not None and self._unit:
                text = plain_value(val)
                text = None if text in (None, "") else str(text)
                self._sink.context(ContextChange(self._unit, field, text, ts))
        except Exception:  # noqa: BLE001 - one bad notification must not stop the others
            log.exception("OPC UA source %s: notification", self._source.name)

    def status_change_notification(self, status) -> None:
        log.info("OPC UA source %s: subscription status %s", self._source.name, status)
