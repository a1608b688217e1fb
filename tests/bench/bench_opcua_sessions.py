"""OPC UA delivery over several client sessions: does every value the simulator writes arrive?

The simulator records every value update it writes (tag, SourceTimestamp, value); N client
sessions record every notification; the two are compared per tag over a window of simulated
updates. Sessions are the edge's own OPC UA source (``edge``) or bare asyncua subscription
clients (``bare``); the plant runs in this process or in a child process (``--separate``),
optionally with its event loop blocked now and then (``--stall-every``), as a busy server's is.

Run: ``.venv/bin/python -m tests.bench.bench_opcua_sessions [--bioreactors 5] [--updates 60]
[--sessions 1 3 5] [--kind edge bare] [--separate [--stall-every 12 --stall-for 2.5]]
[--publishing-interval 0.5] [--queue-size 10] [--edge-watchdog 1] [--client-watchdog 1]``

Each line gives delivered / written for the same window and its ratio to the 1-session figure
of the same run; ``counted_in_window`` is what a benchmark that only counts (notifications
arrived in the window / values written in it) would report; ``connections_lost`` counts
sessions the client gave up. ``--edge-watchdog 1`` gives the edge asyncua's default 1 s health
probe, as it had before it used its ``timeout`` for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edge.contract.messages import to_micros

NAMESPACE = "urn:batchwire:sim"

# --------------------------------------------------------------------------- plant side


def plant_config(bioreactors: int, opcua_port: int, publish_interval: float = 1.0):
    from simulators.plant import BioreactorConfig, PlantConfig, ServersConfig, standard_recipe

    return PlantConfig(
        # a step no longer than the publish interval: each publish is a new simulated instant
        # (with several publishes per step, noise gives one timestamp several values)
        name="delivery", seed=1, speed=1.0, step=min(1.0, publish_interval), publish_interval=publish_interval,
        servers=ServersConfig(opcua_port=opcua_port, control_port=0, modbus_enabled=False),
        recipes=[standard_recipe()],
        bioreactors=[BioreactorConfig(name=f"BR{i + 1:02d}", recipe="CHO-FB-14D", start=0)
                     for i in range(bioreactors)],
    )


@dataclass
class WriteLog:
    """Every value update the OPC UA server wrote: tag -> {source timestamp µs: value}."""

    by_tag: dict[str, dict[int, Any]] = field(default_factory=dict)
    #: writes that reused a (tag, source timestamp) already written: the key would be ambiguous
    reused_timestamps: int = 0
    #: wall-clock time (the DataValue's ServerTimestamp, µs) of every write
    write_times: list[int] = field(default_factory=list)

    def record(self, tag: str, dv) -> None:
        value = dv.Value.Value if dv.Value is not None else None
        writes = self.by_tag.setdefault(tag, {})
        ts = to_micros(dv.SourceTimestamp)
        self.reused_timestamps += ts in writes
        writes[ts] = value
        self.write_times.append(to_micros(dv.ServerTimestamp))

    def between(self, t0: int, t1: int) -> dict[str, dict[int, Any]]:
        return {tag: {ts: v for ts, v in writes.items() if t0 <= ts <= t1} for tag, writes in self.by_tag.items()}


def signals_of(catalog) -> list[tuple[str, str, dict]]:
    """(tag, node id, tag settings for the edge) of every OPC UA variable of the plant."""
    out = []
    for sig in catalog.opcua():
        meta = {"datatype": sig.datatype, "unit": sig.eng_unit or "", "description": sig.description or sig.name}
        if sig.low is not None and sig.high is not None:
            meta.update(low=float(sig.low), high=float(sig.high))
        out.append((sig.name, sig.node_id, meta))
    return out


def clock_offset(plant) -> int:
    """Wall clock minus simulated time, µs (constant at speed 1: the simulated clock starts
    when the servers are up, some seconds after the start time it counts from)."""
    return now_micros() - to_micros(plant.sim_time)


def _child_plant(bioreactors: int, port: int, publish_interval: float, conn, stall_every: float,
                 stall_for: float) -> None:
    """A plant in its own process: reports its endpoint, signals and clock offset, then answers
    ``"log"`` with its write log so far and ``"stop"`` by stopping and sending the whole log.
    With ``stall_every`` > 0 its event loop is blocked for ``stall_for`` seconds that often, as
    a server busy with a large publish (or a loaded PLC) is."""
    logging.basicConfig(level=logging.ERROR)

    async def stall() -> None:
        while True:
            await asyncio.sleep(stall_every)
            time.sleep(stall_for)          # deliberately blocking: the server answers nothing meanwhile

    async def main() -> None:
        from simulators.runner import PlantRunner

        log = WriteLog()
        async with PlantRunner(plant_config(bioreactors, port, publish_interval)) as plant:
            plant.opcua_server.on_written = log.record
            staller = asyncio.create_task(stall()) if stall_every > 0 else None
            conn.send((plant.opcua_endpoint, signals_of(plant.catalog), clock_offset(plant)))
            loop = asyncio.get_running_loop()
            while await loop.run_in_executor(None, conn.recv) == "log":
                conn.send((log.by_tag, log.write_times))
            if staller is not None:
                staller.cancel()
        conn.send((log.by_tag, log.write_times))

    asyncio.run(main())


class ChildPlant:
    """``async with ChildPlant(...) as plant``: the plant in its own process, as ``sim run`` is.
    ``endpoint``, ``tags`` (see :func:`signals_of`), ``offset`` (see :func:`clock_offset`);
    ``await plant.writes()`` fetches the write log so far; on exit ``log`` holds all of it."""

    def __init__(self, bioreactors: int, *, publish_interval: float = 1.0, stall_every: float = 0.0,
                 stall_for: float = 0.0) -> None:
        from tests.conftest import free_port

        self._args = (bioreactors, free_port(), publish_interval)
        self._stall = (stall_every, stall_for)
        self.log = WriteLog()
        self.endpoint = ""
        self.tags: list = []
        self.offset = 0

    async def _call(self, message=None):
        loop = asyncio.get_running_loop()
        if message is not None:
            self._conn.send(message)
        return await loop.run_in_executor(None, self._conn.recv)

    async def __aenter__(self) -> "ChildPlant":
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_plant, args=(*self._args, child, *self._stall), daemon=True)
        self._proc.start()
        self.endpoint, self.tags, self.offset = await self._call()
        return self

    async def writes(self) -> WriteLog:
        self.log.by_tag, self.log.write_times = await self._call("log")
        return self.log

    async def __aexit__(self, *exc) -> None:
        self.log.by_tag, self.log.write_times = await self._call("stop")
        self._proc.join(10)


# --------------------------------------------------------------------------- client side


@dataclass
class Received:
    """What one session received: tag -> {source timestamp µs: value}, plus bad-quality notes."""

    by_tag: dict[str, dict[int, Any]] = field(default_factory=dict)
    qualities: dict[str, dict[int, int]] = field(default_factory=dict)
    events: list = field(default_factory=list)
    #: arrival minus source timestamp, µs, of every notification
    latencies: list[int] = field(default_factory=list)
    #: wall clock minus simulated time, µs (the plant runs at real time)
    offset: int = 0
    #: wall-clock arrival time of every notification, µs
    arrivals: list[int] = field(default_factory=list)

    def add(self, tag: str, ts: int, value: Any, quality: int = 0) -> None:
        self.by_tag.setdefault(tag, {})[ts] = value
        now = now_micros()
        self.latencies.append(now - ts)
        self.arrivals.append(now)
        if quality:
            self.qualities.setdefault(tag, {})[ts] = quality

    def latest(self) -> int:
        return max((max(v) for v in self.by_tag.values() if v), default=0)


class RecordingSink:
    """The edge agent's Sink interface, recording what an OPC UA source delivers."""

    def __init__(self, received: Received) -> None:
        self.received = received
        self.metadata_reports = 0

    def reading(self, r) -> None:
        self.received.add(r.tag, r.ts, r.value, r.quality)

    def context(self, c) -> None:
        pass

    def metadata(self, tags) -> None:
        self.metadata_reports += 1

    def event(self, kind: str, **detail) -> None:
        self.received.events.append((kind, detail))


class EdgeSession:
    """One edge OPC UA source (one session) over some of the plant's tags."""

    def __init__(self, name: str, endpoint: str, tags: list[tuple[str, str, dict]], publishing_interval: float,
                 queue_size: int) -> None:
        from edge.config import OpcUaSource as Settings
        from edge.sources.opcua import OpcUaSource

        settings = Settings(name=name, endpoint=endpoint, namespace_uri=NAMESPACE,
                            publishing_interval=publishing_interval, queue_size=queue_size,
                            tags=[{"name": tag, "node": node, **meta} for tag, node, meta in tags])
        self.source = OpcUaSource(settings)
        self.reconnects = 0
        self.received = Received()
        self._sink = RecordingSink(self.received)
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.source.run(self._sink, self._stop))
        deadline = time.monotonic() + 60
        while not self.source.connected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.source.name}: not connected ({self.source.last_error})")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        self.reconnects = self.source.connections - 1


@contextlib.contextmanager
def edge_watchdog(seconds: float | None):
    """Run the edge's OPC UA clients with another health-probe interval/timeout (None: as
    configured), e.g. asyncua's default 1 s to measure what the edge did before it set its own."""
    if seconds is None:
        yield
        return
    from asyncua import Client

    from edge.sources import opcua

    class Probing(Client):
        def __init__(self, url, timeout=4, watchdog_intervall=1.0, **kw):
            super().__init__(url, timeout=timeout, watchdog_intervall=seconds, **kw)

    opcua.Client = Probing
    try:
        yield
    finally:
        opcua.Client = Client


class BareSession:
    """A bare asyncua client session with one subscription over some of the plant's tags."""

    def __init__(self, endpoint: str, tags: list[tuple[str, str, dict]], publishing_interval: float,
                 queue_size: int, sampling_interval: float, watchdog: float = 1.0) -> None:
        self.endpoint = endpoint
        self.watchdog = watchdog
        self.reconnects = 0
        self.tags = tags
        self.publishing_interval = publishing_interval
        self.queue_size = queue_size
        self.sampling_interval = sampling_interval
        self.received = Received()
        self._client = None

    async def start(self) -> None:
        from asyncua import Client

        client = Client(self.endpoint, timeout=30, watchdog_intervall=self.watchdog)

        async def lost(exc) -> None:
            self.reconnects += 1        # (a bare client without auto_reconnect stays down)

        client.connection_lost_callback = lost
        await client.connect()
        self._client = client
        ns = await client.get_namespace_index(NAMESPACE)
        names: dict[Any, str] = {}
        received = self.received

        class Handler:
            def datachange_notification(self, node, val, data):
                dv = data.monitored_item.Value
                code = dv.StatusCode.value if dv.StatusCode is not None else 0
                received.add(names[node.nodeid], to_micros(dv.SourceTimestamp), val, code)

        sub = await client.create_subscription(self.publishing_interval * 1000, Handler())
        nodes = []
        for tag, node, _ in self.tags:
            n = client.get_node(f"ns={ns};{node}")
            names[n.nodeid] = tag
            nodes.append(n)
        await sub.subscribe_data_change(nodes, queuesize=self.queue_size, sampling_interval=self.sampling_interval)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.disconnect()


def split(tags: list[tuple[str, str, dict]], n: int) -> list[list[tuple[str, str, dict]]]:
    """Group the tags by unit, units dealt round-robin over ``n`` sessions (one unit per
    session when there are as many sessions as units, as the edge is usually configured)."""
    units = sorted({tag.split(".")[0] for tag, _, _ in tags})
    groups: list[list] = [[] for _ in range(n)]
    for i, unit in enumerate(units):
        groups[i % n].extend(t for t in tags if t[0].split(".")[0] == unit)
    return [g for g in groups if g]


# --------------------------------------------------------------------------- comparison


@dataclass
class Delivery:
    written: int
    delivered: int
    missing: dict[str, list[int]]
    wrong_value: int
    window: tuple[int, int] = (0, 0)
    #: notifications that arrived during the window / values written during it, both counted
    #: by the wall clock (how a counting benchmark without matching sees it)
    counted_ratio: float = 0.0

    def missing_times(self) -> list[float]:
        """Distinct source timestamps with a missing update, seconds after the window start."""
        return sorted({round((ts - self.window[0]) / 1e6, 1) for v in self.missing.values() for ts in v})

    @property
    def ratio(self) -> float:
        return self.delivered / self.written if self.written else 1.0


def compare(written: dict[str, dict[int, Any]], received: dict[str, dict[int, Any]]) -> Delivery:
    """Which written (tag, timestamp, value) updates are among the received ones."""
    total = got = wrong = 0
    missing: dict[str, list[int]] = {}
    for tag, writes in written.items():
        seen = received.get(tag, {})
        for ts, value in writes.items():
            total += 1
            if ts not in seen:
                missing.setdefault(tag, []).append(ts)
                continue
            got += 1
            if seen[ts] != value:
                wrong += 1
    return Delivery(total, got, missing, wrong)


def now_micros() -> int:
    return to_micros(datetime.now(timezone.utc))


# --------------------------------------------------------------------------- one case


async def run_case(*, kind: str, sessions: int, bioreactors: int, updates: int, publishing_interval: float,
                   queue_size: int, sampling_interval: float = 0.0, separate: bool = False,
                   publish_interval: float = 1.0, drain: float = 15.0, client_watchdog: float = 1.0,
                   edge_watchdog_s: float | None = None, stall_every: float = 0.0,
                   stall_for: float = 0.0) -> tuple[Delivery, list]:
    """Start a plant, ``sessions`` clients of ``kind``, count ``updates`` publish cycles, compare."""
    from tests.conftest import free_port

    port = free_port()
    child = None
    runner = None
    log = WriteLog()
    if separate:
        child = ChildPlant(bioreactors, publish_interval=publish_interval, stall_every=stall_every,
                           stall_for=stall_for)
        await child.__aenter__()
        endpoint, tags, offset = child.endpoint, child.tags, child.offset
    else:
        from simulators.runner import PlantRunner

        runner = PlantRunner(plant_config(bioreactors, port, publish_interval))
        await runner.__aenter__()
        runner.opcua_server.on_written = log.record
        endpoint, tags, offset = runner.opcua_endpoint, signals_of(runner.catalog), clock_offset(runner)
    clients: list = []
    try:
        for i, group in enumerate(split(tags, sessions)):
            if kind == "edge":
                clients.append(EdgeSession(f"s{i}", endpoint, group, publishing_interval, queue_size))
            else:
                clients.append(BareSession(endpoint, group, publishing_interval, queue_size, sampling_interval,
                                           client_watchdog))
        with edge_watchdog(edge_watchdog_s):
            await asyncio.gather(*(c.start() for c in clients))
            await asyncio.sleep(2 * publish_interval)         # initial values settled
            w0 = now_micros()
            t0 = w0 - offset                                   # in simulated time
            await asyncio.sleep(updates * publish_interval)
            w1 = now_micros()
            t1 = w1 - offset
            # let what was written in the window arrive (the clients may lag); stop early when
            # every session has received something stamped after the window
            deadline = time.monotonic() + drain
            while time.monotonic() < deadline and not all(c.received.latest() > t1 + 1_000_000 for c in clients):
                await asyncio.sleep(0.2)
    finally:
        for c in clients:
            try:
                await c.stop()
            except Exception as err:  # noqa: BLE001 - measuring; report and go on
                print(f"stopping a client: {err!r}")
        if runner is not None:
            await runner.__aexit__(None, None, None)
        if child is not None:
            await child.__aexit__(None, None, None)
            log = child.log
    received: dict[str, dict[int, Any]] = {}
    for c in clients:
        for tag, vals in c.received.by_tag.items():
            received.setdefault(tag, {}).update(vals)
    d = compare(log.between(t0, t1), received)
    d.window = (t0, t1)
    arrived = sum(1 for c in clients for a in c.received.arrivals if w0 <= a <= w1)
    sent = sum(1 for w in log.write_times if w0 <= w <= w1)
    d.counted_ratio = arrived / sent if sent else 0.0
    for c in clients:
        c.received.offset = offset
    return d, clients


async def main(args) -> None:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    for kind in args.kind:
        base = None
        for n in args.sessions:
            t = time.monotonic()
            d, recs = await run_case(kind=kind, sessions=n, bioreactors=args.bioreactors, updates=args.updates,
                                     publishing_interval=args.publishing_interval, queue_size=args.queue_size,
                                     sampling_interval=args.sampling_interval, separate=args.separate,
                                     publish_interval=args.publish_interval, client_watchdog=args.client_watchdog,
                                     edge_watchdog_s=args.edge_watchdog, stall_every=args.stall_every,
                                     stall_for=args.stall_for)
            reconnects = sum(c.reconnects for c in recs)
            recs = [c.received for c in recs]
            base = d.ratio if base is None or base == 0 else base
            print("  received per session:", [sum(len(v) for v in r.by_tag.values()) for r in recs],
                  "latest after window end, s:", [round((r.latest() - d.window[1]) / 1e6, 1) for r in recs],
                  "missing at t0+:", d.missing_times()[:20])
            lat = sorted(x - r.offset for r in recs for x in r.latencies[len(r.latencies) // 10:])
            p50, p99, pmax = (lat[int(q * (len(lat) - 1))] / 1e6 for q in (0.5, 0.99, 1.0)) if lat else (0, 0, 0)
            missing_tags = sorted(d.missing)[:5]
            print(f"{kind:4s} sessions={n} {'separate' if args.separate else 'same-process'} "
                  f"written={d.written} delivered/written={d.ratio:.4f} ratio_to_1_session={d.ratio / base:.4f} "
                  f"counted_in_window={d.counted_ratio:.3f} connections_lost={reconnects} wrong_values={d.wrong_value} missing_tags={len(d.missing)} {missing_tags} "
                  f"latency s p50={p50:.2f} p99={p99:.2f} max={pmax:.2f} ({time.monotonic() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bioreactors", type=int, default=5)
    p.add_argument("--updates", type=int, default=60, help="publish cycles counted")
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--kind", nargs="+", default=["edge", "bare"], choices=["edge", "bare"])
    p.add_argument("--separate", action="store_true", help="plant in its own process")
    p.add_argument("--publishing-interval", type=float, default=0.5, help="seconds")
    p.add_argument("--publish-interval", type=float, default=1.0, help="plant update period, seconds")
    p.add_argument("--queue-size", type=int, default=10)
    p.add_argument("--sampling-interval", type=float, default=0.0, help="ms (bare clients)")
    p.add_argument("--client-watchdog", type=float, default=1.0,
                   help="bare clients: asyncua health-probe interval and timeout, s (asyncua default 1)")
    p.add_argument("--stall-every", type=float, default=0.0,
                   help="with --separate: block the plant's event loop this often, s (a busy server)")
    p.add_argument("--stall-for", type=float, default=2.5, help="... for this long, s")
    p.add_argument("--edge-watchdog", type=float, default=None,
                   help="edge: override the health-probe interval and timeout, s (1 = before the fix)")
    asyncio.run(main(p.parse_args()))
