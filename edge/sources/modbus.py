"""Modbus TCP source: polls one device with the planned block reads (pymodbus 3.16).

Every poll reads all blocks; all values of one poll carry the local clock time at which the
poll started (Modbus has no source timestamps). A block that fails (timeout, exception
response, broken connection) yields samples without a value and a quality saying why
(:mod:`edge.sources.quality`), so gaps are recorded, never silent. Reconnecting is our own
loop with backoff; pymodbus's reconnect delay is never 0 (that would spin).
"""

from __future__ import annotations

import asyncio
import logging
import time

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from edge.config import ModbusSource as ModbusSettings
from edge.contract.messages import TagInfo, now_micros
from edge.reading import Sink
from edge.sources import quality
from edge.sources.modbus_poll import PollPlan

log = logging.getLogger(__name__)


class ModbusSource:
    kind = "modbus"

    def __init__(self, settings: ModbusSettings):
        self.settings = settings
        self.name = settings.name
        self.plan = PollPlan(settings)
        self.connected = False
        self.polls = 0

    def tags(self) -> list[TagInfo]:
        s = self.settings
        return [
            TagInfo(name=t.name, datatype=t.resolved_datatype, unit=t.unit, description=t.description,
                    source=f"modbus:{s.host}:{s.port}/{s.unit_id}/{t.table}/{t.address}",
                    low=t.low, high=t.high)
            for t in s.tags
        ]

    def units(self) -> list[str]:
        return [self.plan.unit] if self.plan.unit else []

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        s = self.settings
        for change in self.plan.static_context(now_micros()):
            sink.context(change)
        client = AsyncModbusTcpClient(
            s.host, port=s.port, timeout=s.timeout, retries=0,
            reconnect_delay=s.reconnect_delay, reconnect_delay_max=s.reconnect_delay_max)
        delay = s.reconnect_delay
        next_poll = time.monotonic()
        try:
            while not stop.is_set():
                if not client.connected:
                    try:
                        ok = await client.connect()
                    except (OSError, ModbusException) as err:
                        log.debug("Modbus source %s: connect: %s", self.name, err)
                        ok = False
                    if not ok:
                        if self.connected or self.polls == 0:
                            log.warning("Modbus source %s: %s:%s unreachable", self.name, s.host, s.port)
                        self.connected = False
                        self._fail_all(sink, quality.not_connected())
                        self.polls += 1
                        if await _wait(stop, delay):
                            break
                        delay = min(delay * 2, s.reconnect_delay_max)
                        continue
                    delay = s.reconnect_delay
                    self.connected = True
                    log.info("Modbus source %s connected to %s:%s", self.name, s.host, s.port)
                await self._poll(client, sink)
                self.polls += 1
                next_poll += s.poll_interval
                now = time.monotonic()
                if next_poll < now:  # fell behind: skip missed polls instead of bursting
                    next_poll = now + s.poll_interval
                if await _wait(stop, next_poll - now):
                    break
        finally:
            client.close()
            self.connected = False

    async def _poll(self, client: AsyncModbusTcpClient, sink: Sink) -> None:
        s = self.settings
        ts = now_micros()
        readers = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }
        for block in self.plan.blocks:
            data = None
            failure = 0
            try:
                reply = await asyncio.wait_for(
                    readers[block.table](block.start, count=block.count, device_id=s.unit_id),
                    s.timeout + 1)
                if reply.isError():
                    failure = quality.modbus_exception(getattr(reply, "exception_code", 0))
                else:
                    data = reply.bits if block.table in ("coil", "discrete") else reply.registers
            except asyncio.TimeoutError:
                failure = quality.timeout()
            except ConnectionException:
                failure = quality.not_connected()
            except ModbusIOException:
                # pymodbus reports "no response within the timeout" this way
                failure = quality.timeout()
            except (ModbusException, OSError) as err:
                log.debug("Modbus source %s: block %s: %s", self.name, block, err)
                failure = quality.communication_error()
            readings, changes = self.plan.interpret(block, data, failure, ts)
            for c in changes:
                sink.context(c)
            for r in readings:
                sink.reading(r)

    def _fail_all(self, sink: Sink, code: int) -> None:
        ts = now_micros()
        for block in self.plan.blocks:
            readings, _ = self.plan.interpret(block, None, code, ts)
            for r in readings:
                sink.reading(r)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless ``stop`` is set first; True when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), max(seconds, 0))
        return True
    except asyncio.TimeoutError:
        return False
