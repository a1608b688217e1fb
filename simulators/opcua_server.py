"""Thin asyncua server shell: builds the address space from the catalog and publishes readings.

Address space: Objects / ``Plant`` / one folder per unit / one variable per signal, each with a
string node id ``<UNIT>.<SIGNAL>`` in namespace ``urn:batchwire:sim``, a Description, and for
numbers the ``EngineeringUnits`` (EUInformation, UNECE codes) and ``EURange`` properties.
Only the unsecured endpoint (SecurityPolicy None) is offered: the simulator is a test fixture.
Client writes to setpoints are forwarded to ``on_write(tag, value)`` (an operator action).

Subscriptions report every value written (asyncua reports on each write; it does not sample).
When a monitored item's queue overflows, the oldest value is discarded and, as OPC UA
requires (Part 4, 5.12.1.5) but asyncua does not do by itself, the Overflow InfoBit is set on
the StatusCode of the value that now heads the queue, so a client can see the gap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

from asyncua import Server, ua
from asyncua.common.callback import CallbackType

from simulators.catalog import NAMESPACE_URI, Catalog, Signal

log = logging.getLogger(__name__)

_VARIANT = {"float": ua.VariantType.Double, "int": ua.VariantType.Int32, "bool": ua.VariantType.Boolean,
            "string": ua.VariantType.String}
_DEFAULT = {"float": 0.0, "int": 0, "bool": False, "string": ""}

# engineering unit -> UNECE Rec 20 common code (OPC UA Part 8, 5.6.3)
_UNECE = {"degC": "CEL", "%": "P1", "rpm": "RPM", "L/min": "L2", "L": "LTR", "mL": "MLT", "L/h": "E32",
          "g/L": "GL", "mmol/L": "M33", "mmHg": "HN", "1/h": "H10", "g": "GRM", "kg": "KGM", "Pa": "PAL",
          "mbar": "MBR", "mL/min": "41", "s": "SEC", "pH": "", "1e6 cells/mL": "", "mmol/L/h": ""}


def unece_id(code: str) -> int:
    """OPC UA UnitId for a UNECE common code (Part 8: bytes of the code, big-endian); -1 if none."""
    if not code:
        return -1
    value = 0
    for ch in code:
        value = (value << 8) | ord(ch)
    return value


def eu_information(eng_unit: str) -> ua.EUInformation:
    return ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                            UnitId=unece_id(_UNECE.get(eng_unit, "")),
                            DisplayName=ua.LocalizedText(eng_unit), Description=ua.LocalizedText(eng_unit))


class OpcUaServerError(RuntimeError):
    """The OPC UA server could not start (e.g. the port is taken)."""


class OpcUaServer:
    """One asyncua server exposing the OPC UA part of a catalog."""

    def __init__(self, host: str, port: int, catalog: Catalog, on_write: Callable[[str, object], None]) -> None:
        self.host = host
        self.port = port
        self.catalog = catalog
        self.on_write = on_write
        self.endpoint = f"opc.tcp://{host}:{port}/batchwire/"
        self._server: Server | None = None
        self._ns = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._tags: dict[ua.NodeId, str] = {}
        self._sigs: dict[str, Signal] = {}
        self._last: dict[str, tuple[object, int, datetime]] = {}
        self.write_counts: Counter[str] = Counter()   # value updates written per tag
        #: Called with ``(tag, DataValue)`` after every value update is written, so a harness can
        #: check that subscribers received each one. Must not block.
        self.on_written: Callable[[str, ua.DataValue], None] | None = None

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("batchwire simulated plant")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._ns = await server.register_namespace(NAMESPACE_URI)
        _report_overflows(server.iserver.subscription_service)
        await self._build(server)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        try:
            await server.start()
        except OSError as err:
            raise OpcUaServerError(f"servers.opcua_port: cannot serve OPC UA at {self.endpoint}: {err}") from err
        self._server = server
        self._last.clear()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                await server.stop()
            except Exception:  # noqa: BLE001 - stopping must not mask the reason we stop
                log.exception("error while stopping the OPC UA server")

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _build(self, server: Server) -> None:
        """Create Plant/<unit>/<signal> with one AddNodes call per unit (fast for 10k variables).

        Numbers are AnalogItemType variables with EngineeringUnits and EURange properties;
        strings and booleans are BaseDataVariableType.
        """
        ns = self._ns
        plant = await server.nodes.objects.add_folder(ua.NodeId("Plant", ns), ua.QualifiedName("Plant", ns))
        self._nodes.clear()
        self._tags.clear()
        by_unit: dict[str, list[Signal]] = {}
        for sig in self.catalog.opcua():
            by_unit.setdefault(sig.unit, []).append(sig)
        session = server.iserver.isession
        for unit, signals in by_unit.items():
            folder = await plant.add_folder(ua.NodeId(unit, ns), ua.QualifiedName(unit, ns))
            items: list[ua.AddNodesItem] = []
            for sig in signals:
                identifier = sig.node_id[2:] if sig.node_id and sig.node_id.startswith("s=") else sig.name
                nodeid = ua.NodeId(identifier, ns)
                items.append(_variable_item(folder.nodeid, nodeid, ua.QualifiedName(sig.signal, ns), sig))
                if sig.datatype in ("float", "int"):
                    if sig.eng_unit:
                        items.append(_property_item(nodeid, ua.NodeId(f"{identifier}.EngineeringUnits", ns),
                                                    "EngineeringUnits", eu_information(sig.eng_unit),
                                                    ua.ObjectIds.EUInformation))
                    if sig.low is not None and sig.high is not None:
                        items.append(_property_item(nodeid, ua.NodeId(f"{identifier}.EURange", ns), "EURange",
                                                    ua.Range(Low=float(sig.low), High=float(sig.high)),
                                                    ua.ObjectIds.Range))
                self._nodes[sig.name] = nodeid
                self._tags[nodeid] = sig.name
                self._sigs[sig.name] = sig
            for result in await session.add_nodes(items):
                result.StatusCode.check()

    async def _post_write(self, event, _dispatcher) -> None:
        for wv, result in zip(event.request_params.NodesToWrite, event.response_params or []):
            if int(wv.AttributeId) != ua.AttributeIds.Value.value or not result.is_good():
                continue
            tag = self._tags.get(wv.NodeId)
            if tag is None or not self._sigs[tag].writable:
                continue
            self._last.pop(tag, None)   # republish the model's value even if the write is rejected
            value = wv.Value.Value.Value if wv.Value and wv.Value.Value else None
            try:
                self.on_write(tag, value)
            except ValueError as err:
                log.warning("rejected write to %s: %s", tag, err)

    async def publish(self, readings: dict, timestamps: Callable[[str], datetime]) -> int:
        """Write every reading that changed (value or status); return how many were written."""
        server = self._server
        if server is None:
            return 0
        now = datetime.now(timezone.utc)
        written = 0
        for tag, nodeid in self._nodes.items():
            reading = readings.get(tag)
            if reading is None:
                continue
            sig = self._sigs[tag]
            value, status = reading.value, reading.status
            last = self._last.get(tag)
            if last is not None and last[0] == value and last[1] == status:
                continue
            if sig.datatype == "float":
                value = float(value)
            elif sig.datatype == "int":
                value = int(value)
            ts = timestamps(sig.unit)
            dv = ua.DataValue(ua.Variant(value, _VARIANT[sig.datatype]), ua.StatusCode(status),
                              SourceTimestamp=ts, ServerTimestamp=now)
            await server.write_attribute_value(nodeid, dv)
            self._last[tag] = (reading.value, reading.status, ts)
            self.write_counts[tag] += 1
            if self.on_written is not None:
                self.on_written(tag, dv)
            written += 1
            if written % 500 == 0:
                # writes never suspend: yield so subscription publishes and other clients are served
                await asyncio.sleep(0)
        return written

    def drop_connections(self) -> int:
        """Abort every client connection (clients see the socket close); return how many."""
        server = self._server
        if server is None:
            return 0
        transports = list(server.iserver.asyncio_transports)
        for transport in transports:
            transport.abort()
        return len(transports)


#: StatusCode InfoType "DataValue" (bits 10-11 = 01) with the Overflow InfoBit (bit 7).
OVERFLOW_BITS = 0x0480


def _report_overflows(service) -> None:
    """Make every subscription ``service`` creates mark queue overflows (see the module doc).

    Relies on asyncua 2.1 internals (``SubscriptionService.create_subscription``,
    ``InternalSubscription.enqueue_datachange_event`` and its ``_triggered_datachanges``
    queues); checked by tests/integration/test_opcua_delivery.py."""
    create = service.create_subscription

    async def create_subscription(params, callback, session_id, request_callback=None):
        result = await create(params, callback, session_id, request_callback=request_callback)
        sub = service.subscriptions.get(result.SubscriptionId)
        if sub is not None:
            _mark_overflow(sub)
        return result

    service.create_subscription = create_subscription


def _mark_overflow(sub) -> None:
    enqueue = sub.enqueue_datachange_event

    async def enqueue_datachange_event(mid: int, eventdata: ua.MonitoredItemNotification, maxsize: int) -> None:
        queued = sub._triggered_datachanges.get(mid)
        # a queue of 1 keeps the latest by definition: the spec sets no Overflow bit then
        overflow = maxsize > 1 and queued is not None and len(queued) >= maxsize
        await enqueue(mid, eventdata, maxsize)
        if overflow:
            queued = sub._triggered_datachanges[mid]
            head = queued[0]
            dv = head.Value
            code = dv.StatusCode.value if dv.StatusCode is not None else 0
            # the DataValue is shared by every subscription monitoring the node: copy it
            queued[0] = ua.MonitoredItemNotification(
                ClientHandle=head.ClientHandle,
                Value=dataclasses.replace(dv, StatusCode=ua.StatusCode(code | OVERFLOW_BITS)))

    sub.enqueue_datachange_event = enqueue_datachange_event


_DATATYPE = {"float": ua.ObjectIds.Double, "int": ua.ObjectIds.Int32, "bool": ua.ObjectIds.Boolean,
             "string": ua.ObjectIds.String}


def _variable_item(parent: ua.NodeId, nodeid: ua.NodeId, name: ua.QualifiedName, sig: Signal) -> ua.AddNodesItem:
    numeric = sig.datatype in ("float", "int")
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Description = ua.LocalizedText(sig.description)
    attrs.DataType = ua.NodeId(_DATATYPE[sig.datatype])
    attrs.Value = ua.Variant(_DEFAULT[sig.datatype], _VARIANT[sig.datatype])
    attrs.ValueRank = ua.ValueRank.Scalar
    access = ua.AccessLevel.CurrentRead.mask | (ua.AccessLevel.CurrentWrite.mask if sig.writable else 0)
    attrs.AccessLevel = attrs.UserAccessLevel = access
    attrs.WriteMask = attrs.UserWriteMask = 0
    attrs.Historizing = False
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = name
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
    item.TypeDefinition = ua.NodeId(ua.ObjectIds.AnalogItemType if numeric else ua.ObjectIds.BaseDataVariableType)
    item.NodeAttributes = attrs
    return item


def _property_item(parent: ua.NodeId, nodeid: ua.NodeId, name: str, value: object, datatype: int) -> ua.AddNodesItem:
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.Description = ua.LocalizedText(name)
    attrs.DataType = ua.NodeId(datatype)
    attrs.Value = ua.Variant(value, ua.VariantType.ExtensionObject)
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.AccessLevel = attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.WriteMask = attrs.UserWriteMask = 0
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = ua.QualifiedName(name, 0)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
    item.TypeDefinition = ua.NodeId(ua.ObjectIds.PropertyType)
    item.NodeAttributes = attrs
    return item
