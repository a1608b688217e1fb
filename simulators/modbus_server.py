"""Thin pymodbus shell: one Modbus TCP gateway, one device (unit id) per Modbus unit.

The register contents live in :class:`simulators.registers.DeviceImage` (pure); pymodbus'
``SimDevice`` action hook copies the image into the response on every read and forwards client
writes to ``on_write(tag, value)``. Faults are decided by ``fault_for(unit)``: an exception
code to answer with, or ``"timeout"`` to stay silent. Requests for an unknown unit id are
answered with exception 0x0B (gateway target device failed to respond).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Callable

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.registers import DeviceImage

log = logging.getLogger(__name__)

_TABLE_BY_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
                22: "holding", 23: "holding", 4: "input"}
FaultDecision = int | str | None


class ModbusServerError(RuntimeError):
    """The Modbus server could not start."""


def _bits_to_registers(bits: list[int]) -> list[int]:
    regs = [0] * ((len(bits) + 15) // 16)
    for i, b in enumerate(bits):
        if b:
            regs[i // 16] |= 1 << (i % 16)
    return regs


class ModbusServer:
    """A Modbus TCP server exposing ``images`` (unit id -> image)."""

    def __init__(self, host: str, port: int, images: dict[int, DeviceImage],
                 on_write: Callable[[str, object], None], fault_for: Callable[[str], FaultDecision]) -> None:
        self.host = host
        self.port = port
        self.images = images
        self.on_write = on_write
        self.fault_for = fault_for
        self._server: ModbusTcpServer | None = None
        self.requests = 0

    def _device(self, image: DeviceImage) -> SimDevice:
        def block(table: str, bits: bool) -> list[SimData]:
            n = max(image.sizes[table], 1)
            if bits:
                return [SimData(0, count=n, values=False, datatype=DataType.BITS)]
            return [SimData(0, count=n, values=0, datatype=DataType.REGISTERS)]

        return SimDevice(image.unit_id, simdata=(block("coil", True), block("discrete", True),
                                                 block("holding", False), block("input", False)),
                         action=partial(self._action, image))

    async def _action(self, image: DeviceImage, function_code: int, start_address: int, address: int,
                      count: int, registers: list[int], set_values) -> ExcCodes | None:
        self.requests += 1
        decision = self.fault_for(image.unit)
        if decision == "timeout":
            # with ignore_missing_devices the server sends nothing: the client times out
            raise NoSuchIdException(f"{image.unit}: simulated timeout")
        if isinstance(decision, int):
            return ExcCodes(decision)
        table = _TABLE_BY_FC.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is not None:
            values = [int(v) for v in set_values]
            touched = image.written(table, address, values)
            if not touched:
                return ExcCodes.ILLEGAL_ADDRESS
            for sig, value in touched:
                try:
                    self.on_write(sig.name, value)
                except ValueError as err:
                    log.warning("rejected Modbus write to %s: %s", sig.name, err)
                    return ExcCodes.ILLEGAL_VALUE
            return None
        data = image.tables[table]
        if table in ("coil", "discrete"):
            packed = _bits_to_registers(data)
            registers[:len(packed)] = packed
        else:
            registers[:len(data)] = data
        return None

    async def _unknown(self, *_args) -> ExcCodes:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def start(self) -> None:
        devices = [self._device(img) for img in self.images.values()]
        # unit id 0 stands for every id not configured: answer "gateway target failed to respond"
        # (for addresses 0..255; pymodbus validates blocks in quadratic memory, so keep them small)
        bits, regs = 256, 256
        devices.append(SimDevice(0, simdata=([SimData(0, count=bits, values=False, datatype=DataType.BITS)],
                                             [SimData(0, count=bits, values=False, datatype=DataType.BITS)],
                                             [SimData(0, count=regs, values=0, datatype=DataType.REGISTERS)],
                                             [SimData(0, count=regs, values=0, datatype=DataType.REGISTERS)]),
                                 action=self._unknown))
        server = ModbusTcpServer(devices, address=(self.host, self.port), ignore_missing_devices=True)
        try:
            await server.serve_forever(background=True)
        except (OSError, RuntimeError) as err:
            raise ModbusServerError(f"servers.modbus_port: cannot serve Modbus TCP at {self.host}:{self.port}: {err}") from err
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            await asyncio.sleep(0)

    def drop_connections(self) -> int:
        """Close every client connection; return how many."""
        server = self._server
        if server is None:
            return 0
        conns = list(server.active_connections.values())
        for conn in conns:
            if conn.transport is not None:
                conn.transport.abort()
        return len(conns)
