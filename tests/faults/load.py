"""Simulated equipment whose output is known exactly: an asyncua server with ``n_tags``
float variables that all change together once per ``period`` seconds.

Each change ("tick") writes every variable with a deterministic value and one source
timestamp, and records that timestamp only after every write of the tick returned, so
:meth:`produced` is exactly the set of samples the server served: ``(tag, ts_us, value)``.
Tick 0 is written before anyone subscribes (a subscriber receives it as the initial value);
:meth:`start_ticking` begins the changes, :meth:`stop_ticking` ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta, timezone

from asyncua import Server, ua

NAMESPACE = "urn:batchwire:faultload"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def tag_name(i: int) -> str:
    return f"L.T{i:03d}"


def value_of(i: int, tick: int) -> float:
    """Distinct per tag and tick, and exact in binary floating point."""
    return (tick * 1000 + i) / 4.0


class OpcUaLoad:
    def __init__(self, port: int, *, n_tags: int = 100, period: float = 0.5):
        self.port = port
        self.n_tags = n_tags
        self.period = period
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/faultload/"
        self.server = Server()
        self._nodes: list[ua.NodeId] = []
        self.ticks: list[int] = []  # source timestamp (µs) of tick k at index k
        self._task: asyncio.Task | None = None
        self._halt = asyncio.Event()
        self.late_ticks = 0  # ticks that started later than one period after schedule

    @property
    def tags(self) -> list[str]:
        return [tag_name(i) for i in range(self.n_tags)]

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        idx = await s.register_namespace(NAMESPACE)
        obj = await s.nodes.objects.add_object(idx, "LOAD")
        for i in range(self.n_tags):
            var = await obj.add_variable(ua.NodeId(tag_name(i), idx), tag_name(i),
                                         ua.Variant(0.0, ua.VariantType.Double))
            self._nodes.append(var.nodeid)
        await s.start()
        await self._tick()  # tick 0: the initial value a subscriber receives

    async def stop(self) -> None:
        await self.stop_ticking()
        with contextlib.suppress(Exception):
            await self.server.stop()

    async def _tick(self) -> None:
        k = len(self.ticks)
        ts_us = int(time.time() * 1000) * 1000  # whole milliseconds: exact on every hop
        if self.ticks and ts_us <= self.ticks[-1]:
            ts_us = self.ticks[-1] + 1000
        ts = _EPOCH + timedelta(microseconds=ts_us)
        for i, node in enumerate(self._nodes):
            dv = ua.DataValue(ua.Variant(value_of(i, k), ua.VariantType.Double),
                              SourceTimestamp=ts, ServerTimestamp=ts)
            await self.server.write_attribute_value(node, dv)
        self.ticks.append(ts_us)

    def start_ticking(self) -> None:
        self._halt = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def stop_ticking(self) -> None:
        """End the changes after the current tick (a tick is never left half served)."""
        if self._task is not None:
            self._halt.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            next_at += self.period
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._halt.wait(), max(0.0, next_at - time.monotonic()))
            if self._halt.is_set():
                return
            if time.monotonic() - next_at > self.period:
                self.late_ticks += 1
            await self._tick()

    # ------------------------------------------------------------------ the record

    def produced(self, *, until_us: int | None = None) -> set[tuple[str, int, float]]:
        """Every sample served so far (or with a source time <= ``until_us``)."""
        return {(tag_name(i), ts, value_of(i, k))
                for k, ts in enumerate(self.ticks) if until_us is None or ts <= until_us
                for i in range(self.n_tags)}

    def produced_count(self, *, until_us: int | None = None) -> int:
        n = len(self.ticks) if until_us is None else sum(1 for t in self.ticks if t <= until_us)
        return n * self.n_tags
