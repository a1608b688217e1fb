"""The ingest worker: MQTT in, database transactions out, acknowledgements after commit.

Threads (the GIL makes more of them pointless):

* paho's network thread receives a message, classifies it (decode + checks) and puts it
  on a bounded queue; it never touches the database.
* the writer thread batches (:class:`~historian.ingest.batcher.Batcher`), writes one
  transaction per batch, and only after COMMIT sends the MQTT PUBACKs and publishes the
  end-to-end :class:`~edge.contract.AckMessage` per edge session.
* plain backend only: the rollup thread folds the buckets ingest queued into
  ``samples_1m``/``samples_1h`` every ``rollup_interval`` seconds
  (:func:`historian.store.rollups.catch_up`; one worker at a time does it). It waits on
  PostgreSQL almost all the time, so it costs the writer little of the GIL.

Backpressure: at most ``receive_maximum`` unacknowledged messages are in flight from the
broker (MQTT v5 Receive Maximum), and the queue is sized above that, so memory is bounded
by configuration however slow the database is. Database down: the same batch is retried
with exponential backoff; nothing is acknowledged, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from edge.contract import encode, ingest_filter, now_micros, topic
from historian.store import migrate
from historian.store.backend import Backend, installed_backend
from historian.store.errors import StoreError, StoreUnavailable
from historian.store.writer import DEFAULT_SKEW_LIMIT_US, Writer, WriteResult, open_pool

from .acks import acks_for
from .batcher import Batcher, Taken
from .classify import classify
from .mqtt import AckHandle, MqttLink

log = logging.getLogger(__name__)

_STOP = object()
MAINTENANCE_EVERY = 3600.0  # s: keep plain partitions created ahead
REPACK_EVERY = 600.0  # s: merge small packed sample rows of finished hours (plain backend)


class Ingestor:
    """One ingest worker. Use as ``async with Ingestor(...) as ing:`` or
    ``await Ingestor(...).run(stop_event)``; :meth:`start`/:meth:`stop` for threads.

    ``share_group``: several workers with the same group split the data and event streams
    (MQTT shared subscription). Births and states are subscribed by every worker without
    the group: a shared subscription receives no retained messages (births are retained)
    and each worker must know a tag before the data that uses it arrives.
    ``worker_id``: stable id of this worker; when given, the MQTT session is persistent so a
    restarted worker gets what it had not acknowledged.
    """

    def __init__(self, dsn: str, broker_url: str, *, topic_prefix: str = "batchwire",
                 share_group: str | None = None, worker_id: str | None = None,
                 max_batch_samples: int = 10_000, max_batch_delay: float = 0.1,
                 receive_maximum: int = 200, skew_limit: timedelta = timedelta(hours=1),
                 migrate_on_start: bool = True, rollup_interval: float = 1.0,
                 mqtt_protocol: str = "5"):
        self.dsn = dsn
        self.broker_url = broker_url
        self.prefix = topic_prefix
        self.worker_id = worker_id or f"ingest-{uuid.uuid4().hex[:8]}"
        self._persistent = worker_id is not None
        self._batcher = Batcher(max_samples=max_batch_samples, max_delay=max_batch_delay)
        self._receive_maximum = receive_maximum
        self._skew_us = int(skew_limit / timedelta(microseconds=1)) or DEFAULT_SKEW_LIMIT_US
        self._migrate = migrate_on_start
        # room for every message the broker may have in flight, so paho's thread never blocks
        self._queue: queue.Queue = queue.Queue(maxsize=receive_maximum * 2 + 16)
        self._accepting = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._rollup_thread: threading.Thread | None = None
        self._rollup_interval = rollup_interval
        self._rollup_buckets = 0
        self._pool = None
        self._writer: Writer | None = None
        self._backend: Backend | None = None
        filters = [ingest_filter(k, topic_prefix, share_group) for k in ("data", "event")]
        filters += [ingest_filter(k, topic_prefix) for k in ("birth", "state")]
        self._link = MqttLink(broker_url, f"batchwire-{self.worker_id}", filters, self._on_message,
                              receive_maximum=receive_maximum, persistent_session=self._persistent,
                              protocol=mqtt_protocol)
        self._stats_lock = threading.Lock()
        self._messages = self._samples = self._quarantined = self._errors = self._duplicates = 0
        self._last_commit: datetime | None = None
        self._last_error: str | None = None
        self._last_maintenance = 0.0
        self._last_repack = time.monotonic()
        self._retention_thread: threading.Thread | None = None
        self._fatal: BaseException | None = None  # what ended the writer thread, if anything did
        self._on_fatal = None  # set by run(): tells its event loop

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Migrate (idempotent), open the pool, start the writer and the MQTT connection."""
        if self._migrate:
            migrate(self.dsn)
        with psycopg.connect(self.dsn) as conn:
            self._backend = installed_backend(conn)
        if self._backend is None:
            raise StoreError("the database has no batchwire schema: run `batchwire db migrate` first")
        self._pool = open_pool(self.dsn, name=f"batchwire-{self.worker_id}")
        self._pool.open(wait=False)
        self._writer = Writer(self._pool, self._backend, worker=self.worker_id, skew_limit_us=self._skew_us)
        self._thread = threading.Thread(target=self._write_loop, name=f"{self.worker_id}-writer", daemon=True)
        self._thread.start()
        if self._backend is Backend.PLAIN and self._rollup_interval > 0:
            self._rollup_thread = threading.Thread(target=self._rollup_loop, name=f"{self.worker_id}-rollups",
                                                   daemon=True)
            self._rollup_thread.start()
        self._accepting = True
        self._link.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, commit and acknowledge what was taken, disconnect.
        Messages received but not committed by then are not acknowledged: the broker or the
        edge sends them again."""
        self._accepting = False
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._rollup_thread is not None:
            self._rollup_thread.join(timeout)
        if self._retention_thread is not None:
            self._retention_thread.join(timeout)
        self._link.stop()
        if self._pool is not None:
            self._pool.close()

    async def __aenter__(self) -> "Ingestor":
        await asyncio.to_thread(self.start)  # migrations and the first connection block
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.stop)

    async def run(self, stop_event: asyncio.Event) -> None:
        """Ingest until ``stop_event`` is set. Raises :class:`StoreError` when the writer
        thread died of an unexpected error (a defect): a worker that can no longer commit
        must end, so its supervisor restarts it, rather than stay connected doing nothing.
        What it had received is not acknowledged, so the broker and the edges send it again."""
        async with self:
            loop = asyncio.get_running_loop()
            failed: asyncio.Future = loop.create_future()

            def on_fatal(err: BaseException) -> None:
                loop.call_soon_threadsafe(lambda: failed.done() or failed.set_result(err))
            self._on_fatal = on_fatal
            if self._fatal is not None:
                on_fatal(self._fatal)
            stopper = asyncio.ensure_future(stop_event.wait())
            try:
                await asyncio.wait({stopper, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                self._on_fatal = None
            if failed.done():
                err = failed.result()
                raise StoreError(f"ingest writer failed, nothing can be committed: {err!r}") from err

    def wait_connected(self, timeout: float) -> bool:
        return self._link.connected.wait(timeout)

    def status(self) -> dict:
        """Snapshot for health checks: connected, messages, samples, quarantined,
        last_commit (UTC datetime or None), backlog (messages received, not yet committed),
        errors (failed database attempts), duplicates, last_error, worker, backend,
        rollup_buckets (rollup buckets this worker recomputed), writer_failed (the writer
        thread died of an unexpected error: nothing is committed any more)."""
        with self._stats_lock:
            return {
                "connected": self._link.connected.is_set(),
                "messages": self._messages,
                "samples": self._samples,
                "quarantined": self._quarantined,
                "duplicates": self._duplicates,
                "last_commit": self._last_commit,
                "backlog": self._queue.qsize() + len(self._batcher),
                "errors": self._errors,
                "last_error": self._last_error,
                "worker": self.worker_id,
                "backend": self._backend.value if self._backend else None,
                "rollup_buckets": self._rollup_buckets,
                "writer_failed": self._fatal is not None,
            }

    # ------------------------------------------------------------------ paho thread

    def _on_message(self, topic_name: str, payload: bytes, handle: AckHandle) -> None:
        if not self._accepting:
            return  # not acknowledged: re-delivered to this or another worker
        self._queue.put((classify(topic_name, payload, now_micros()), handle))

    # ------------------------------------------------------------------ writer thread

    def _write_loop(self) -> None:
        try:
            self._write_batches()
        except BaseException as err:  # noqa: BLE001 - a defect: say so loudly and end the worker (run raises)
            log.critical("ingest writer thread failed; nothing more is committed or acknowledged: %r", err,
                         exc_info=True)
            self._accepting = False
            with self._stats_lock:
                self._fatal = err
                self._last_error = f"writer failed: {err!r}"
            callback = self._on_fatal
            if callback is not None:
                callback(err)

    def _write_batches(self) -> None:
        batcher = self._batcher
        stopping = False
        while True:
            deadline = batcher.deadline()
            timeout = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                entry = self._queue.get(timeout=timeout)
            except queue.Empty:
                entry = None
            if entry is _STOP:
                stopping = True
            elif entry is not None:
                batcher.add(entry[0], entry[1], time.monotonic())
                # take whatever is already waiting before deciding, without blocking
                while not batcher.full():
                    try:
                        entry = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if entry is _STOP:
                        stopping = True
                        break
                    batcher.add(entry[0], entry[1], time.monotonic())
            if batcher.ready(time.monotonic()) or (stopping and len(batcher)):
                if not self._commit(batcher.take()):
                    return  # stopped while the database was down
            if stopping and not len(batcher) and self._queue.empty():
                return
            self._maintain()

    def _commit(self, taken: Taken) -> bool:
        delay = 0.2
        while True:
            try:
                result = self._writer.write(taken.batch)
                break
            except (StoreUnavailable, StoreError) as err:
                with self._stats_lock:
                    self._errors += 1
                    self._last_error = str(err)
                if self._stopping.is_set():
                    log.warning("stopping with %d messages uncommitted (not acknowledged): %s",
                                len(taken.handles), err)
                    return False
                log.warning("write failed, retrying in %.1f s: %s", delay, err)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
        self._acknowledge(taken, result)
        return True

    def _acknowledge(self, taken: Taken, result: WriteResult) -> None:
        for handle in taken.handles:
            self._link.ack(handle)
        for site, ack in acks_for(result.applied + result.duplicates + result.refused,
                                  now_micros(), self.worker_id, result.events, result.edge_sessions):
            self._link.publish(topic("ack", site, ack.edge, self.prefix), encode(ack))
        with self._stats_lock:
            self._messages += len(taken.handles)
            self._samples += result.samples
            self._quarantined += result.quarantined
            self._duplicates += len(result.duplicates)
            self._last_commit = result.committed_at

    # ------------------------------------------------------------------ rollup thread

    def _rollup_loop(self) -> None:
        from historian.store import rollups

        while not self._stopping.wait(self._rollup_interval):
            try:
                while not self._stopping.is_set():
                    with self._pool.connection(timeout=5) as conn:
                        done = rollups.catch_up(conn)
                    if done:
                        with self._stats_lock:
                            self._rollup_buckets += done
                    if not done:  # nothing left, or another worker is at it
                        break
            except Exception as err:  # noqa: BLE001 - pending rows stay queued; retried next interval
                log.warning("rollup catch-up failed (retried in %.1f s): %s", self._rollup_interval, err)
            self._repack()

    def _repack(self) -> None:
        """Plain backend: merge the small packed rows of finished hours (low ingest rates
        write one row per tag and batch). One worker at a time; a failure is retried later."""
        from historian.store import packing

        now = time.monotonic()
        if now - self._last_repack < REPACK_EVERY:
            return
        self._last_repack = now
        try:
            with self._pool.connection(timeout=5) as conn:
                merged = packing.repack(conn)
            if merged:
                log.info("repacked small sample rows into %d row(s)", merged)
        except Exception as err:  # noqa: BLE001 - the rows stay as they are; tried again later
            log.warning("repacking sample rows failed: %s", err)

    def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_maintenance < MAINTENANCE_EVERY:
            return
        self._last_maintenance = now
        if self._retention_thread is None or not self._retention_thread.is_alive():
            # per-group deletes can take a while: never in the writer thread
            self._retention_thread = threading.Thread(target=self._retention_job, daemon=True,
                                                      name=f"{self.worker_id}-retention")
            self._retention_thread.start()
        if self._backend is not Backend.PLAIN:
            return
        try:
            with self._pool.connection(timeout=5) as conn:
                conn.execute("SELECT count(*) FROM batchwire.ensure_partitions("
                             "(now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 3)")
                conn.commit()
        except Exception as err:  # noqa: BLE001 - retried at the next interval; samples go to DEFAULT meanwhile
            log.warning("partition maintenance failed: %s", err)
            self._last_maintenance = now - MAINTENANCE_EVERY + 60

    def _retention_job(self) -> None:
        """Tag-group retention (historian.store.retention); one worker at a time does it."""
        from historian.store.retention import apply_retention

        try:
            with self._pool.connection(timeout=5) as conn:
                report = apply_retention(conn)
            if report.dropped or report.deleted_rows:
                log.info("retention: dropped %s, deleted %d row(s) of %d tag(s)", report.dropped or "nothing",
                         report.deleted_rows, report.tags_trimmed)
        except Exception as err:  # noqa: BLE001 - nothing is lost by waiting; retried at the next interval
            log.warning("retention job failed: %s", err)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
