"""The pipeline under test, end to end on real parts, and the bookkeeping of a scenario.

    load (asyncua server, in this process) -> edge agent (process) -> Mosquitto
        -> historian ingest (process) -> PostgreSQL

:class:`Pipeline` starts everything, waits until the first tick of every tag is stored
(the chain works), starts the load, and at the end stops the load and waits until the
database holds every produced sample and the edge's outbox is empty (everything the edge
captured was acknowledged). Conditions are polled with deadlines; nothing sleeps on hope.

:func:`compare` turns a produced set and the stored rows into lost / duplicated /
unexpected counts; :func:`record` prints one table line per scenario and appends it to a
JSON report (``$BATCHWIRE_FAULT_REPORT`` or ``<pytest basetemp>/fault-report.json``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from tests.faults.load import NAMESPACE, OpcUaLoad
from tests.faults.procs import Proc, edge_config, edge_process, ingest_process
from tests.faults.services import free_port

Sample = tuple[str, int, float]


def now_us() -> int:
    return int(time.time() * 1_000_000)


async def until(pred: Callable[[], object] | Callable[[], Awaitable[object]], *, timeout: float,
                what: str, interval: float = 0.25, on_timeout: Callable[[], str] | None = None):
    """Poll ``pred`` (sync predicates run in a thread) until truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred() if asyncio.iscoroutinefunction(pred) else await asyncio.to_thread(pred)
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{extra}")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- database


def _q(dsn: str, sql: str, params=()):
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()
    except psycopg.OperationalError:
        return None  # database down or not yet migrated: "not yet"
    except psycopg.errors.UndefinedTable:
        return None


def stored_count(dsn: str, until_us: int | None = None) -> int | None:
    """Distinct (tag, time) pairs stored: a duplicate must not make a wait end early (the
    verdict counts duplicates separately)."""
    if until_us is None:
        rows = _q(dsn, "SELECT count(DISTINCT (tag_id, ts)) FROM batchwire.samples")
    else:
        rows = _q(dsn, "SELECT count(DISTINCT (tag_id, ts)) FROM batchwire.samples WHERE ts <= %s",
                  (datetime.fromtimestamp(until_us / 1e6, timezone.utc),))
    return None if rows is None else rows[0][0]


def stored_samples(dsn: str) -> list[Sample]:
    rows = _q(dsn, """
        SELECT t.name, (extract(epoch FROM s.ts) * 1000000)::bigint, s.value
          FROM batchwire.samples s JOIN batchwire.tags t USING (tag_id)""")
    assert rows is not None, "database unreachable at the end of the scenario"
    return [(r[0], int(r[1]), r[2]) for r in rows]


def outbox_count(outbox_dir: Path) -> int | None:
    path = outbox_dir / "outbox.sqlite3"
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    produced: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int  # stored but never produced (or changed on the way)
    lost_examples: list = field(default_factory=list)
    dup_examples: list = field(default_factory=list)
    unexpected_examples: list = field(default_factory=list)


def compare(produced: set[Sample] | Counter, stored: list[Sample]) -> Verdict:
    """Lost = produced but not stored; duplicated = stored more often than produced;
    unexpected = stored but not produced. ``produced`` may be a multiset (Counter)."""
    want = produced if isinstance(produced, Counter) else Counter(produced)
    have = Counter(stored)
    lost = want - have
    extra = have - want
    dups = Counter({k: n for k, n in extra.items() if k in want})
    unexpected = Counter({k: n for k, n in extra.items() if k not in want})
    return Verdict(
        produced=sum(want.values()), stored=len(stored), lost=sum(lost.values()),
        duplicated=sum(dups.values()), unexpected=sum(unexpected.values()),
        lost_examples=sorted(lost)[:5], dup_examples=sorted(dups)[:5],
        unexpected_examples=sorted(unexpected)[:5])


@dataclass
class ScenarioReport:
    scenario: str
    produced: int
    stored: int
    lost: int
    duplicated: int
    recovery_s: float | None
    duration_s: float
    criterion: str
    detail: dict = field(default_factory=dict)

    def line(self) -> str:
        rec = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return (f"| {self.scenario:<32} | {self.produced:>8} | {self.stored:>8} | {self.lost:>4} | "
                f"{self.duplicated:>4} | {rec:>8} | {self.duration_s:>6.0f} |")


HEADER = ("| scenario                         | produced |   stored | lost | dup. | recovery |   wall |\n"
          "|----------------------------------|---------:|---------:|-----:|-----:|---------:|-------:|")


def record(report: ScenarioReport, basetemp: Path) -> None:
    path = Path(os.environ.get("BATCHWIRE_FAULT_REPORT") or basetemp / "fault-report.json")
    try:
        entries = json.loads(path.read_text()) if path.exists() else []
    except ValueError:
        entries = []
    entries.append({**asdict(report), "at": datetime.now(timezone.utc).isoformat()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1, default=str))
    print(f"\n{HEADER}\n{report.line()}\n(report: {path})", flush=True)


# --------------------------------------------------------------------------- the pipeline


class Pipeline:
    """Load server + edge process + ingest process around a broker and a database the test
    chose. ``edge_broker`` / ``edge_prefix`` may differ from the historian's (a proxy or a
    relay in between)."""

    def __init__(self, workdir: Path, *, db: str, broker: str, edge_broker: str | None = None,
                 prefix: str | None = None, edge_prefix: str | None = None, n_tags: int = 100,
                 period: float = 0.5, ingest_db: str | None = None):
        self.dir = workdir
        self.db = db
        self.broker = broker
        self.prefix = prefix or f"fault-{uuid.uuid4().hex[:8]}"
        self.edge_prefix = edge_prefix or self.prefix
        self.edge_id = "gw-fault"
        self.site = "site-f"
        self.outbox = workdir / "outbox"
        self.load = OpcUaLoad(free_port(), n_tags=n_tags, period=period)
        # the test reads ``db`` directly; ingest may reach it another way (through a proxy)
        self.ingest: Proc = ingest_process(workdir, db=ingest_db or db, broker=broker, prefix=self.prefix)
        self.edge: Proc = edge_process(workdir, edge_config(
            edge=self.edge_id, site=self.site, outbox=self.outbox, broker=edge_broker or broker,
            prefix=self.edge_prefix, endpoint=self.load.endpoint, namespace=NAMESPACE,
            tags=self.load.tags))
        self.t_start = time.monotonic()

    def diagnostics(self) -> str:
        return (f"stored={stored_count(self.db)} produced={self.load.produced_count()} "
                f"outbox={outbox_count(self.outbox)} edge_alive={self.edge.alive} "
                f"ingest_alive={self.ingest.alive}\n--- edge log\n{self.edge.log_tail()}\n"
                f"--- ingest log\n{self.ingest.log_tail()}")

    async def start(self) -> None:
        """Everything up, the first value of every tag stored, then the load starts."""
        await self.load.start()
        self.ingest.start()
        self.edge.start()
        n = self.load.n_tags
        await until(lambda: (stored_count(self.db) or 0) >= n, timeout=90,
                    what="the initial value of every tag stored", on_timeout=self.diagnostics)
        self.load.start_ticking()
        self.t_start = time.monotonic()

    async def run_for(self, seconds: float) -> None:
        """Keep the load running (the length of a phase is the test's input)."""
        await asyncio.sleep(seconds)

    async def recovery(self, fault_end: float, fault_end_us: int, *, timeout: float = 180) -> float:
        """Seconds from ``fault_end`` (monotonic) until every sample produced up to
        ``fault_end_us`` is stored."""
        want = self.load.produced_count(until_us=fault_end_us)
        await until(lambda: (stored_count(self.db, fault_end_us) or 0) >= want, timeout=timeout,
                    what=f"{want} samples produced before the fault ended to be stored",
                    on_timeout=self.diagnostics)
        return time.monotonic() - fault_end

    async def finish(self, *, timeout: float = 180) -> float:
        """Stop the load; wait until everything produced is stored and the edge's outbox is
        empty. Returns the drain time in seconds."""
        await self.load.stop_ticking()
        t0 = time.monotonic()
        want = self.load.produced_count()
        await until(lambda: (stored_count(self.db) or 0) >= want and outbox_count(self.outbox) == 0,
                    timeout=timeout, what=f"{want} samples stored and the outbox empty",
                    on_timeout=self.diagnostics)
        return time.monotonic() - t0

    def verdict(self) -> Verdict:
        return compare(self.load.produced(), stored_samples(self.db))

    async def close(self) -> None:
        for p in (self.edge, self.ingest):
            await asyncio.to_thread(p.stop)
        await self.load.stop()


async def completeness(dsn: str, edge: str) -> dict:
    """The historian's own answer (``GET /api/v1/completeness``, the real app in process)
    over everything the edge sent."""
    import httpx

    from historian.api import create_app

    app = create_app(dsn)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/api/v1/completeness", params={
                "edge": edge, "start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"})
            assert r.status_code == 200, r.text
            return r.json()


async def conclude(pipe: Pipeline, scenario: str, *, basetemp: Path, recovery_s: float | None,
                   criterion: str = "stored set == produced set",
                   detail: dict | Callable[[], dict] | None = None,
                   expect_starts: tuple[int, int] = (1, 1)) -> ScenarioReport:
    """Stop the load, drain, compare, report, and assert 0 lost / 0 duplicated / 0 changed
    and that neither process needed a restart it did not get from the scenario itself."""
    drain = await pipe.finish()
    v = pipe.verdict()
    comp = await completeness(pipe.db, pipe.edge_id)
    if callable(detail):
        detail = detail()  # counters read after the drain
    rep = ScenarioReport(
        scenario=scenario, produced=v.produced, stored=v.stored, lost=v.lost,
        duplicated=v.duplicated, recovery_s=recovery_s,
        duration_s=time.monotonic() - pipe.t_start, criterion=criterion,
        detail={"drain_s": round(drain, 1), "unexpected": v.unexpected,
                "late_ticks": pipe.load.late_ticks, "edge_starts": pipe.edge.starts,
                "ingest_starts": pipe.ingest.starts,
                "completeness": {k: comp[k] for k in ("complete", "expected", "received", "missing")},
                **(detail or {})})
    record(rep, basetemp)
    assert (v.lost, v.duplicated, v.unexpected) == (0, 0, 0), (
        f"lost {v.lost} {v.lost_examples}, duplicated {v.duplicated} {v.dup_examples}, "
        f"unexpected {v.unexpected} {v.unexpected_examples}")
    # the historian's own account agrees: every message of the session, no gap, no data-gap event
    assert comp["complete"] and comp["missing"] == 0 and comp["received"] == comp["expected"] > 0, comp
    # no manual action: the processes we did not kill are the ones we started, still running
    assert pipe.edge.alive and pipe.ingest.alive, pipe.diagnostics()
    assert (pipe.edge.starts, pipe.ingest.starts) == expect_starts
    return rep
