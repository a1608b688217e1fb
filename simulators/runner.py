"""Runs a plant: the model loop on the simulated clock, the OPC UA and Modbus servers, the control port.

::

    async with PlantRunner(cfg) as plant:
        print(plant.opcua_endpoint, plant.modbus_host, plant.modbus_port)
        await plant.trigger_fault({"kind": "frozen", "target": "BR01.TEMP"})

Simulated time is ``start + (wall time since start) * speed``. Every ``publish_interval`` wall
seconds the model is stepped up to that time and every server is updated with readings whose
source timestamp is that one simulated instant (plus a unit's clock skew, when faulted), so all
devices agree on time at any speed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from simulators.catalog import Catalog
from simulators.control import ControlServer
from simulators.faults import ActiveFault, FaultError, FaultRecord, FaultSpec
from simulators.modbus_server import ModbusServer
from simulators.opcua_server import OpcUaServer
from simulators.plant import PlantConfig
from simulators.plantmodel import PlantModel, Reading
from simulators.registers import device_images

log = logging.getLogger(__name__)


class PlantRunner:
    """Async context manager running ``config``; see the module docstring.

    Attributes after entry: ``opcua_endpoint`` (str, empty when the plant has no OPC UA unit),
    ``modbus_host``, ``modbus_port`` (int, 0 when there is no Modbus unit), ``control_port``,
    ``catalog`` (:class:`simulators.catalog.Catalog`), ``fault_log`` (list of
    :class:`simulators.faults.FaultRecord`), ``model`` (:class:`simulators.plantmodel.PlantModel`).
    """

    def __init__(self, config: PlantConfig, *, start: datetime | None = None) -> None:
        self.config = config
        self.start = start or config.start or datetime.now(timezone.utc).replace(microsecond=0)
        self.model = PlantModel(config, self.start)
        srv = config.servers
        self.opcua_endpoint = ""
        self.modbus_host = srv.host
        self.modbus_port = 0
        self.control_port = 0
        self._opcua: OpcUaServer | None = None
        self._modbus: ModbusServer | None = None
        self._control: ControlServer | None = None
        self._images = device_images(self.model.catalog)
        self._task: asyncio.Task | None = None
        self._side_tasks: set[asyncio.Task] = set()
        self._tick = asyncio.Condition()
        self._wall0 = 0.0
        self.ticks = 0
        self.opcua_writes = 0          # OPC UA value updates written since start
        self.last_publish_s = 0.0
        self.readings_now: dict[str, Reading] = {}

    # -- public ------------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        return self.model.catalog

    @property
    def opcua_server(self) -> OpcUaServer | None:
        """The running OPC UA server shell (``write_counts`` per tag), or None."""
        return self._opcua

    @property
    def fault_log(self) -> list[FaultRecord]:
        return self.model.fault_log

    @property
    def sim_time(self) -> datetime:
        return self.model.sim_time()

    @property
    def sim_seconds(self) -> float:
        return self.model.t

    async def trigger_fault(self, spec: FaultSpec | dict[str, Any]) -> int:
        """Start a fault now; returns its id. Raises FaultError (a ValueError) when it does not apply."""
        if isinstance(spec, dict):
            try:
                spec = FaultSpec.model_validate(spec)
            except ValueError as err:
                raise FaultError(f"invalid fault: {err}") from err
        fault = self.model.start_fault(spec)
        self._server_fault(fault)
        await self._publish()
        return fault.fault_id

    async def clear_fault(self, fault_id: int) -> None:
        self.model.clear_fault(fault_id)
        await self._publish()

    async def write(self, tag: str, value: float) -> None:
        """An operator setpoint change (as a client write would do)."""
        self.model.write(tag, value)
        await self._publish()

    async def wait_ticks(self, n: int = 1, timeout: float = 30.0) -> None:
        """Wait until ``n`` more publish cycles have completed."""
        target = self.ticks + n
        async with self._tick:
            await asyncio.wait_for(self._tick.wait_for(lambda: self.ticks >= target), timeout)

    async def wait_sim(self, seconds: float, timeout: float = 60.0) -> None:
        """Wait until simulated time has reached ``seconds`` after start."""
        async with self._tick:
            await asyncio.wait_for(self._tick.wait_for(lambda: self.model.t >= seconds), timeout)

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> "PlantRunner":
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stop()

    async def _start(self) -> None:
        srv = self.config.servers
        if self.model.catalog.opcua():
            self._opcua = OpcUaServer(srv.host, srv.opcua_port, self.model.catalog, self._client_write)
            await self._opcua.start()
            self.opcua_endpoint = self._opcua.endpoint
        if self._images and srv.modbus_enabled:
            self._modbus = ModbusServer(srv.host, srv.modbus_port, self._images, self._client_write,
                                        self._modbus_decision)
            await self._modbus.start()
            self.modbus_port = srv.modbus_port
        self._control = ControlServer("127.0.0.1", srv.control_port, self._control_request)
        await self._control.start()
        self.control_port = self._control.port
        self._wall0 = time.monotonic()
        for fault in self.model.advance_to(0.0):
            self._server_fault(fault)
        await self._publish()
        self._task = asyncio.create_task(self._loop(), name="plant-loop")
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task) -> None:
        # the loop only ends by cancellation; anything else would freeze the plant silently
        if not task.cancelled() and task.exception() is not None:
            log.error("plant loop stopped: simulated time no longer advances", exc_info=task.exception())

    async def _stop(self) -> None:
        tasks = [t for t in (self._task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._task = None
        for server in (self._control, self._modbus, self._opcua):
            if server is not None:
                await server.stop()

    # -- loop --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        interval = self.config.publish_interval
        next_wall = self._wall0
        while True:
            next_wall += interval
            delay = next_wall - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_wall = time.monotonic()   # behind: do not try to catch up with a burst
                await asyncio.sleep(0)
            target = (time.monotonic() - self._wall0) * self.config.speed
            for fault in self.model.advance_to(target):
                self._server_fault(fault)
            await self._publish()

    async def _publish(self) -> None:
        began = time.monotonic()
        readings = self.model.readings()
        self.readings_now = readings
        for img in self._images.values():
            img.render(readings)
        if self._opcua is not None and self._opcua.running:
            self.opcua_writes += await self._opcua.publish(readings, self._timestamp)
        self.last_publish_s = time.monotonic() - began
        async with self._tick:
            self.ticks += 1
            self._tick.notify_all()

    def _timestamp(self, unit: str) -> datetime:
        return self.model.sim_time(self.model.t + self.model.clock_offset(unit))

    # -- writes and faults -------------------------------------------------------------------
    def _client_write(self, tag: str, value: object) -> None:
        if isinstance(value, bool):
            value = float(value)
        self.model.write(tag, value)  # type: ignore[arg-type]

    def _modbus_decision(self, unit: str) -> int | str | None:
        fault = self.model.modbus_fault(unit)
        if fault is None:
            return None
        if fault.spec.kind == "modbus_timeout":
            return "timeout"
        return int(fault.spec.magnitude or 4)

    def _server_fault(self, fault: ActiveFault) -> None:
        kind = fault.spec.kind
        if kind == "drop_connections":
            n = 0
            if fault.spec.target in ("", "opcua") and self._opcua is not None:
                n += self._opcua.drop_connections()
            if fault.spec.target in ("", "modbus") and self._modbus is not None:
                n += self._modbus.drop_connections()
            self.model.clear_fault(fault.fault_id, reason=f"{n} connection(s) dropped")
        elif kind == "opcua_restart":
            task = asyncio.create_task(self._restart_opcua(fault), name="opcua-restart")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _restart_opcua(self, fault: ActiveFault) -> None:
        if self._opcua is None:
            self.model.clear_fault(fault.fault_id, reason="no OPC UA server")
            return
        await self._opcua.stop()
        await asyncio.sleep(fault.spec.downtime)
        catalog = self.model.renumber() if fault.spec.renumber else self.model.catalog
        srv = self.config.servers
        server = OpcUaServer(srv.host, srv.opcua_port, catalog, self._client_write)
        try:
            for attempt in range(50):
                try:
                    await server.start()
                    break
                except Exception as err:  # noqa: BLE001 - the port may linger briefly after stop
                    if attempt == 49:
                        self.model.clear_fault(fault.fault_id, reason=f"restart failed: {err}")
                        raise
                    await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            await server.stop()     # the plant is shutting down mid-restart
            raise
        self._opcua = server
        detail = f"server back, node ids generation {self.model.generation}" if fault.spec.renumber else "server back"
        self.model.clear_fault(fault.fault_id, reason=detail)
        await self._publish()

    async def _control_request(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "fault":
            fid = await self.trigger_fault(req.get("spec") or {})
            return {"fault_id": fid, "sim_time": self.sim_time.isoformat()}
        if op == "clear":
            await self.clear_fault(int(req["fault_id"]))
            return {}
        if op == "write":
            await self.write(str(req["tag"]), float(req["value"]))
            return {}
        if op == "status":
            return {"sim_time": self.sim_time.isoformat(), "speed": self.config.speed,
                    "opcua_endpoint": self.opcua_endpoint, "modbus": f"{self.modbus_host}:{self.modbus_port}",
                    "active_faults": [{"fault_id": f.fault_id, **f.spec.model_dump(exclude_defaults=True)}
                                      for f in self.model.faults.values()]}
        if op == "log":
            return {"records": [r.as_dict() for r in self.fault_log]}
        raise ValueError(f"unknown op {op!r} (fault, clear, write, status, log)")
