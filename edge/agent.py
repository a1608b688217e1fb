"""The edge agent: sources -> batch context -> batcher -> durable outbox -> MQTT.

Glue only; the decisions live in the pure modules it wires together:
:mod:`edge.context` (which context applies), :mod:`edge.batcher` (what goes in a message),
:mod:`edge.outbox` (what is durable, what a bound drops), :mod:`edge.delivery` (what to send
next, what is still owed) and :mod:`edge.publisher` (one MQTT connection).

Tasks:

* one per source, feeding readings and context changes into this object (the sink);
* ``capture``: seals due batches and commits them to the outbox, one transaction per round
  (a group commit: everything sealed while the previous commit ran goes into the next);
* ``deliver``: the reconnect loop; per connection it publishes the retained ``online``
  state, the retained birth, pending events, then data within the in-flight window, and
  re-queues what the historian has not acknowledged within ``ack_timeout``;
* ``acks``: applies historian acknowledgements to the outbox;
* ``bounds``: applies the outbox age bound even when nothing new arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

import orjson

from edge.batcher import Batcher
from edge.config import EdgeConfig
from edge.context import ContextTracker
from edge.contract.codec import DecodeError, decode, encode
from edge.contract.messages import AckMessage, BirthMessage, StateMessage, TagInfo, now_micros
from edge.contract.topics import topic
from edge.delivery import Delivery, as_historical
from edge.downtime import Downtime
from edge.errors import EdgeError, PublishError
from edge.events import EventDelivery
from edge.lastseen import LastSeen
from edge.membuffer import Gap, MemoryBuffer
from edge.outbox import AppendResult, Outbox
from edge.publisher import MqttLink
from edge.reading import ContextChange, Reading, Sink

log = logging.getLogger(__name__)

#: Backlog payloads read from the outbox per query while replaying.
PREFETCH = 64


class Source(Protocol):
    """An acquisition source. Optional attributes: ``metadata_known`` (False while
    :meth:`tags` is provisional and the source will report the real metadata through
    ``sink.metadata``; default True) and ``metadata_timeout`` (how long the first birth
    waits for that report)."""

    name: str
    connected: bool

    def tags(self) -> list[TagInfo]: ...

    def units(self) -> list[str]: ...

    async def run(self, sink: Sink, stop: asyncio.Event) -> None: ...


def build_sources(config: EdgeConfig) -> list[Source]:
    """The sources a configuration describes (imported lazily: a gateway with only Modbus
    devices does not load asyncua)."""
    sources: list[Source] = []
    if config.opcua:
        from edge.sources.opcua import OpcUaSource

        sources += [OpcUaSource(s) for s in config.opcua]
    if config.modbus:
        from edge.sources.modbus import ModbusSource

        sources += [ModbusSource(s) for s in config.modbus]
    return sources


class EdgeAgent:
    """``async with EdgeAgent(config) as agent:`` runs the agent until the block ends;
    leaving it stops acquisition, commits what is buffered and publishes what it can
    within ``stop_grace`` seconds. ``await agent.wait()`` runs until :meth:`request_stop`.

    ``sources`` replaces the configured ones (for tests and embedding). After a restart on
    a continued outbox, the data-gap event of the downtime waits until every tag captured
    before has reported again, at most ``restart_gap_wait`` seconds (see :mod:`edge.downtime`).
    """

    def __init__(self, config: EdgeConfig, *, sources: list[Source] | None = None,
                 stop_grace: float = 5.0, restart_gap_wait: float = 30.0):
        self.config = config
        self.edge = config.edge.id
        self.site = config.edge.site
        self.prefix = config.mqtt.topic_prefix
        self.stop_grace = stop_grace
        self.restart_gap_wait = restart_gap_wait
        self.sources: list[Source] = sources if sources is not None else build_sources(config)
        self.tracker = ContextTracker(self.site)
        self.batcher = Batcher(config.mqtt.max_samples_per_message, config.mqtt.max_batch_delay)
        self.delivery = Delivery(config.mqtt.ack_timeout)
        self.events = EventDelivery(config.mqtt.ack_timeout)
        self.outbox: Outbox | None = None
        self.session: str | None = None

        self._tags: dict[str, TagInfo] = {}
        # tags whose metadata a source has yet to report: not declared, their data held
        self._unknown: set[str] = set()
        # tags whose metadata changed since the last published birth: their data held
        self._undeclared: set[str] = set()
        metadata_wait = 0.0
        for src in self.sources:
            for t in src.tags():
                self._tags[t.name] = t
                if not getattr(src, "metadata_known", True):
                    self._unknown.add(t.name)
                    metadata_wait = max(metadata_wait, float(getattr(src, "metadata_timeout", 10.0)))
            for unit in src.units():
                self.tracker.declare(unit)
        self._metadata_wait = metadata_wait
        self._metadata_deadline = 0.0  # set at start
        self._metadata_changed = asyncio.Event()
        self._birth_version = 0
        self._births = 0

        self._wake_capture = asyncio.Event()
        self._wake_deliver = asyncio.Event()
        self._source_stop = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._draining = False
        self._acks: asyncio.Queue[AckMessage] = asyncio.Queue()
        self._cache: dict[int, bytes] = {}  # prefetched backlog payloads
        self._tasks: list[asyncio.Task] = []
        self._source_tasks: list[asyncio.Task] = []
        self._link: MqttLink | None = None
        self._started = False

        self.captured = 0
        # what was accepted last per tag (repeats of it are dropped), and this run's downtime
        self.last_seen = LastSeen()
        self.suppressed_repeats = 0
        self._downtime: Downtime | None = None
        self._downtime_deadline = 0.0
        self._committing = 0  # samples sealed and on their way into the outbox
        self.unsaved = MemoryBuffer()  # sealed, not yet committed (the outbox failed)
        self.max_memory = config.outbox.max_memory_samples
        self._outbox_failing_since: float | None = None
        self._outbox_error: str | None = None
        self._retry_at = 0.0
        self._last_outbox_log = 0.0
        self.dropped_in_memory = 0
        self.published = 0
        self.acknowledged = 0
        self.events_acknowledged = 0
        self.dropped_this_run = 0
        self.connections = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> EdgeAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        self.outbox = await asyncio.to_thread(
            Outbox.open, cfg.edge.outbox_dir, edge=self.edge, site=self.site,
            max_bytes=cfg.outbox.max_bytes, max_age=cfg.outbox.max_age)
        self.session = self.outbox.session
        pending = await asyncio.to_thread(self.outbox.pending_seqs)
        self.delivery.restore(pending)
        for event_id, payload in await asyncio.to_thread(self.outbox.pending_events):
            self.events.stored(event_id, payload)
        await self._restore_last_seen()
        log.info("edge %s: outbox %s, session %s (%s), %d messages to deliver",
                 self.edge, self.outbox.path, self.session, "new" if self.outbox.fresh else "continued",
                 len(pending))
        self._started = True
        self._metadata_deadline = time.monotonic() + self._metadata_wait
        self._tasks = [
            asyncio.create_task(self._capture(), name="edge-capture"),
            asyncio.create_task(self._deliver(), name="edge-deliver"),
            asyncio.create_task(self._apply_acks(), name="edge-acks"),
            asyncio.create_task(self._bounds(), name="edge-bounds"),
        ]
        self._source_tasks = [
            asyncio.create_task(self._run_source(s), name=f"edge-source-{s.name}") for s in self.sources
        ]

    async def _restore_last_seen(self) -> None:
        """What the previous runs captured last; on a continued outbox, the downtime."""
        assert self.outbox is not None
        state = await asyncio.to_thread(self.outbox.last_seen)
        self.last_seen = LastSeen(state)
        if self.outbox.fresh:
            return
        record = await asyncio.to_thread(self.outbox.restart_record)
        self._downtime = Downtime.resume(record, {t: st.last_ts for t, st in state.items()}, self._tags,
                                         restarted=now_micros())
        if self._downtime is not None:
            # kept until the event is committed: a stop before that merges it into the next one
            await asyncio.to_thread(self.outbox.save_restart_record, self._downtime.to_record())
            self._downtime_deadline = time.monotonic() + self.restart_gap_wait

    async def stop(self) -> None:
        """Stop acquisition, commit everything buffered, publish what the broker takes
        within ``stop_grace`` seconds, announce ``offline`` and close."""
        if not self._started:
            return
        self._started = False
        self._source_stop.set()
        await _finish(self._source_tasks, timeout=5)
        # seal and commit the rest: after this every acquired sample is durable
        self._draining = True
        self._wake_capture.set()
        capture = self._tasks[0]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(capture), 30)
        deadline = time.monotonic() + self.stop_grace
        while (self._link is not None and self._link.connected
               and (self.delivery.has_work() or self.events.has_work()) and time.monotonic() < deadline):
            self._wake_deliver.set()
            await asyncio.sleep(0.05)
        self._stop_requested.set()
        self._wake_deliver.set()
        acks = self._tasks[2]
        await _finish([t for t in self._tasks if t is not acks], timeout=10)
        # acknowledgements that arrived are applied; waiting for more has no end
        settle = time.monotonic() + 5
        while not self._acks.empty() and not acks.done() and time.monotonic() < settle:
            await asyncio.sleep(0.01)
        await _finish([acks], timeout=0)
        if self.outbox is not None:
            await asyncio.to_thread(self.outbox.close)

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def wait(self) -> None:
        """Run until :meth:`request_stop` (or a task fails)."""
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()

    def stats(self) -> dict[str, Any]:
        """Counters of this run. Units: ``captured``, ``dropped`` in samples; ``published``
        (broker accepted), ``acknowledged`` (historian committed), ``backlog``
        (unacknowledged in the outbox) in data messages."""
        box = self.outbox
        return {
            "captured": self.captured,
            # readings dropped as exact repeats of their tag's last sample (a new subscription)
            "suppressed_repeats": self.suppressed_repeats,
            "downtime_pending": self._downtime is not None,
            "published": self.published,
            "acknowledged": self.acknowledged,
            "dropped": box.dropped_samples if box else 0,
            "dropped_messages": box.dropped_messages if box else 0,
            "backlog": box.count if box else 0,
            "backlog_bytes": box.bytes if box else 0,
            # samples not yet durable, and those dropped by max_memory_samples this run
            "buffered": len(self.batcher) + len(self.unsaved) + self._committing,
            "dropped_in_memory": self.dropped_in_memory,
            "outbox_failing": self._outbox_failing_since is not None,
            "in_flight": self.delivery.in_flight,
            "held": self.delivery.held,  # messages waiting for a birth declaring their tags
            "metadata_pending": sorted(self._unknown),
            "births": self._births,
            "events_pending": len(self.events),  # events the historian has not acknowledged
            "events_acknowledged": self.events_acknowledged,
            "resent": self.delivery.resent,
            "connected": bool(self._link is not None and self._link.connected),
            "connections": self.connections,
            "session": self.session,
            "next_seq": box.next_seq if box else None,
            "sources": {s.name: bool(getattr(s, "connected", False)) for s in self.sources},
            # OPC UA: values the server discarded from a full monitored-item queue (Overflow
            # InfoBit) and the queue size it granted, per source
            "overflows": {s.name: s.overflows for s in self.sources if hasattr(s, "overflows")},
            "revised_queue_size": {s.name: s.revised_queue_size for s in self.sources
                                   if hasattr(s, "revised_queue_size")},
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ sink (sources call these)

    def reading(self, r: Reading) -> None:
        repeat = self.last_seen.is_repeat(r.tag, r.ts, r.value, r.quality)
        if self._downtime is not None and self._downtime.observe(r.tag, r.ts, repeat=repeat):
            self._wake_capture.set()  # every tag reported again: the downtime event is ready
        if repeat:
            # a new subscription re-reporting an unchanged value: already captured
            self.suppressed_repeats += 1
            return
        self.last_seen.note(r.tag, r.ts, r.value, r.quality)
        if self.batcher.add(r, time.monotonic()) or len(self.batcher) == 1:
            self._wake_capture.set()
        if len(self.batcher) + len(self.unsaved) > self.max_memory:
            self._bound_memory()

    def _bound_memory(self) -> None:
        """Drop the oldest samples held in memory down to 90 % of the bound (dropping in
        chunks keeps this off the per-reading path while the bound is hit)."""
        excess = len(self.batcher) + len(self.unsaved) - self.max_memory
        if excess <= 0:
            return
        excess += self.max_memory // 10
        n = self.unsaved.drop_oldest(excess)
        if n < excess:
            gone = self.batcher.drop_oldest(excess - n)
            self.unsaved.dropped_readings(gone)
            n += len(gone)
        if not self.dropped_in_memory or self.unsaved.gap.samples == n:
            log.error("edge %s: %d samples in memory (outbox.max_memory_samples): dropping the "
                      "oldest; a data-gap event will record them (outbox: %s)", self.edge,
                      self.max_memory, self._outbox_error or "committing slower than acquisition")
        self.dropped_in_memory += n

    def context(self, c: ContextChange) -> None:
        self.tracker.apply(c)

    def metadata(self, tags: list[TagInfo]) -> None:
        changed = False
        for t in tags:
            if t.name in self._unknown or self._tags.get(t.name) != t:
                self._unknown.discard(t.name)
                self._tags[t.name] = t
                # from now until a birth with this declaration is out, its data waits
                self._undeclared.add(t.name)
                changed = True
        if changed:
            self._birth_version += 1
            self._metadata_changed.set()
            self._wake_deliver.set()

    def tag_infos(self) -> list[TagInfo]:
        return list(self._tags.values())

    # ------------------------------------------------------------------ tasks

    async def _run_source(self, source: Source) -> None:
        while not self._source_stop.is_set():
            try:
                await source.run(self, self._source_stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a source bug must not stop the agent
                log.exception("source %s failed; restarting in 5 s", source.name)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._source_stop.wait(), 5)

    async def _capture(self) -> None:
        """Seal due batches and commit them; while the outbox fails, keep sealing into the
        bounded memory buffer and retry every second. Exits after the final flush when
        draining (or when cancelled, if the outbox never recovers)."""
        assert self.outbox is not None
        while True:
            wake = [d for d in (self.batcher.deadline(),) if d is not None]
            if self.unsaved or self.unsaved.gap.samples:
                wake.append(self._retry_at)
            if self._downtime is not None:
                wake.append(max(self._downtime_deadline, self._retry_at))
            if not wake and not self._draining:
                await self._wake_capture.wait()
            elif wake and (not self._draining or self._outbox_failing_since is not None):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake_capture.wait(), max(min(wake) - time.monotonic(), 0))
            self._wake_capture.clear()
            now = time.monotonic()
            while self.batcher.due(now) or (self._draining and len(self.batcher)):
                b = self.batcher.seal(self.tracker.at)
                if b is None:
                    break
                self.unsaved.add(b)
            self._bound_memory()
            if (self.unsaved or self.unsaved.gap.samples or self._downtime_ready(now)) and now >= self._retry_at:
                await self._commit()
            if (self._draining and not len(self.batcher) and not self.unsaved and not self.unsaved.gap.samples
                    and not self._downtime_ready(now)):
                return

    async def _commit(self) -> None:
        """One group commit of everything sealed (and of the record of a memory drop)."""
        assert self.outbox is not None
        batches = self.unsaved.take()
        gap = self.unsaved.take_gap()
        events = [self._gap_event(gap)] if gap is not None else []
        downtime = self._downtime if self._downtime_ready(time.monotonic()) else None
        down_event = None
        if downtime is not None:
            down_event = downtime.event(edge=self.edge, site=self.site, session=self.session or "-",
                                        now_us=now_micros())
            if down_event is not None:
                events.append(down_event)
        pending = sum(len(b.samples) for b in batches)
        self._committing += pending
        try:
            result = await asyncio.to_thread(self.outbox.append, batches, events=events,
                                             restart_done=downtime is not None)
        except EdgeError as err:
            # keep the samples in memory (bounded) and retry: a full disk or a locked file may clear
            self._committing -= pending
            self.unsaved.put_back(batches)
            if gap is not None:
                self.unsaved.restore_gap(gap)
            self._outbox_failed(err)
            self._bound_memory()
            return
        self._committing -= pending
        if self._outbox_failing_since is not None:
            log.warning("edge %s: outbox %s commits again after %.0f s%s", self.edge, self.outbox.path,
                        time.monotonic() - self._outbox_failing_since,
                        f"; {gap.samples} samples dropped in memory meanwhile, recorded as data-gap "
                        f"event {events[0].id}" if gap is not None else "")
            self._outbox_failing_since = None
            self._outbox_error = None
        self.captured += result.samples
        if downtime is not None:
            self._downtime_recorded(downtime, down_event)
        for seq, payload in result.committed:
            self.delivery.committed(seq, payload)
        self._apply_drops(result)
        self._wake_deliver.set()

    def _downtime_ready(self, now: float) -> bool:
        """Whether to commit this run's downtime event now: every tag reported again, the
        wait is over, or the agent is stopping (with what is known by then)."""
        d = self._downtime
        return d is not None and (d.complete or now >= self._downtime_deadline or (self._draining and d.observed))

    def _downtime_recorded(self, downtime: Downtime, event) -> None:
        self._downtime = None
        if event is None:
            log.info("edge %s: every tag reported its last value unchanged after the restart: "
                     "nothing missed", self.edge)
        else:
            log.warning("edge %s: downtime recorded as data-gap event %s (%d tags, %s)", self.edge, event.id,
                        len(event.tags), ", ".join(event.tags[:3]) + ("..." if len(event.tags) > 3 else ""))

    def _outbox_failed(self, err: EdgeError) -> None:
        now = time.monotonic()
        self.last_error = self._outbox_error = str(err)
        self._retry_at = now + 1.0
        if self._outbox_failing_since is None:
            self._outbox_failing_since = now
            self._last_outbox_log = now
            log.error("edge %s: %s; holding up to %d samples in memory (outbox.max_memory_samples) "
                      "and retrying every second", self.edge, err, self.max_memory)
        elif now - self._last_outbox_log >= 60:
            self._last_outbox_log = now
            log.error("edge %s: %s; failing for %.0f s, %d samples in memory, %d dropped",
                      self.edge, err, now - self._outbox_failing_since,
                      len(self.unsaved) + len(self.batcher), self.dropped_in_memory)

    def _gap_event(self, gap: Gap):
        now = now_micros()
        return gap.event(edge=self.edge, site=self.site, session=self.session or "-",
                         event_id=f"{self.session}-memgap-{now}-{secrets.token_hex(3)}", now_us=now,
                         bound=self.max_memory, error=self._outbox_error)

    def _apply_drops(self, result: AppendResult) -> None:
        if result.dropped_seqs:
            self.delivery.dropped(result.dropped_seqs)
            for s in result.dropped_seqs:
                self._cache.pop(s, None)
            log.warning("edge %s: outbox bound reached, dropped %d messages (%d samples)",
                        self.edge, len(result.dropped_seqs), result.dropped_samples)
        for event_id, payload in result.events:
            self.events.stored(event_id, payload)

    async def _bounds(self) -> None:
        assert self.outbox is not None
        period = min(max(self.config.outbox.max_age / 20, 0.5), 60.0)
        while not self._stop_requested.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), period)
            if self._stop_requested.is_set():
                return
            try:
                result = await asyncio.to_thread(self.outbox.enforce_bounds)
            except EdgeError as err:
                self.last_error = str(err)
                log.error("edge %s: %s", self.edge, err)
                continue
            if result.dropped_seqs or result.events:
                self._apply_drops(result)
                self._wake_deliver.set()

    async def _apply_acks(self) -> None:
        assert self.outbox is not None
        while True:
            # every queued ack's ranges are of our session (see _on_message)
            acks = [await self._acks.get()]
            while not self._acks.empty():  # merge a burst into one transaction each
                acks.append(self._acks.get_nowait())
            ranges = [r for a in acks for r in a.ranges]
            event_ids = list(dict.fromkeys(e for a in acks for e in a.events))
            if ranges:
                self.delivery.acknowledged(ranges)
                try:
                    deleted = await asyncio.to_thread(self.outbox.acknowledge, self.session, ranges)
                except EdgeError as err:
                    self.last_error = str(err)
                    log.error("edge %s: %s", self.edge, err)
                else:
                    self.acknowledged += len(deleted)
                    for s in deleted:
                        self._cache.pop(s, None)
            if event_ids:
                self.events.acknowledged(event_ids)
                try:
                    gone = await asyncio.to_thread(self.outbox.acknowledge_events, event_ids)
                except EdgeError as err:
                    # still stored: sent again after a restart, recorded once by its id
                    self.last_error = str(err)
                    log.error("edge %s: %s", self.edge, err)
                else:
                    self.events_acknowledged += len(gone)

    def _on_message(self, topic_name: str, payload: bytes) -> None:
        try:
            msg = decode(payload)
        except DecodeError as err:
            log.warning("edge %s: ignoring undecodable message on %s: %s", self.edge, topic_name, err)
            return
        if not isinstance(msg, AckMessage) or msg.edge != self.edge:
            return
        if msg.session != self.session:
            # event ids are unique per edge, whatever session the historian filed them under
            if msg.ranges:
                log.info("edge %s: acknowledgement of seqs for session %s ignored (ours is %s)",
                         self.edge, msg.session, self.session)
            if not msg.events:
                return
            msg = replace(msg, ranges=())
        self._acks.put_nowait(msg)

    # ------------------------------------------------------------------ delivery

    def _topic(self, kind: str) -> str:
        return topic(kind, self.site, self.edge, self.prefix)

    def _state(self, state: str) -> bytes:
        return encode(StateMessage(self.edge, self.site, self.session or "-", state, now_micros()))

    async def _deliver(self) -> None:
        """The reconnect loop: one MqttLink per connection."""
        m = self.config.mqtt
        delay = 1.0
        while not self._stop_requested.is_set():
            try:
                link = MqttLink(
                    host=m.host, port=m.port, client_id=self.config.client_id, username=m.username,
                    password=m.password, tls=m.tls, keepalive=m.keepalive, timeout=m.connect_timeout,
                    ca_file=_opt_str(m.ca_file), cert_file=_opt_str(m.cert_file), key_file=_opt_str(m.key_file),
                    tls_insecure=m.tls_insecure,
                    inflight=m.inflight_messages, will=(self._topic("state"), self._state("offline")),
                    subscriptions=(self._topic("ack"),), on_message=self._on_message)
                async with link:
                    self._link = link
                    self.connections += 1
                    delay = 1.0
                    log.info("edge %s: connected to mqtt://%s:%s", self.edge, m.host, m.port)
                    await self._connected_session(link)
            except EdgeError as err:
                self.last_error = str(err)
                log.warning("edge %s: %s", self.edge, err)
            except Exception as err:  # noqa: BLE001 - keep delivering; the outbox holds the data
                self.last_error = repr(err)
                log.exception("edge %s: delivery failed", self.edge)
            finally:
                self._link = None
                self.delivery.on_disconnect()
                self.events.on_disconnect()
            if self._stop_requested.is_set():
                return
            # jitter: many gateways reconnecting to a restarted broker should not stampede
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, m.reconnect_delay_max)

    async def _connected_session(self, link: MqttLink) -> None:
        m = self.config.mqtt
        await link.publish_wait(self._topic("state"), self._state("online"), retain=True)
        birth_sent = -1
        self.delivery.on_connect()
        window: set[asyncio.Future] = set()
        await self._await_metadata(link)
        while True:
            if birth_sent != self._birth_version:
                # birth before any data of this connection, and again when metadata changed
                birth_sent = self._birth_version
                await self._publish_birth(link)
            now = time.monotonic()
            self.events.expire(now)
            while (nxt := self.events.next()) is not None:
                # events first: few and small; kept until the historian acknowledges them
                event_id, payload = nxt
                self.events.mark_sent(event_id, payload, now)
                try:
                    fut = link.publish(self._topic("event"), payload)
                except PublishError:
                    self.events.publish_failed(event_id)
                    raise
                fut.add_done_callback(lambda f, i=event_id: self._event_published(i, f))
            self.delivery.expire(now)
            while len(window) < m.inflight_messages and self.delivery.has_work():
                item = self.delivery.next()
                if item is None:
                    break
                payload = item.payload
                if payload is None:
                    payload = await self._backlog_payload(item.seq)
                    if payload is None:
                        continue  # acknowledged or dropped meanwhile
                    payload = as_historical(payload)
                if (self._unknown or self._undeclared) and self._needs_birth(payload):
                    self.delivery.hold(item.seq)
                    continue
                self.delivery.mark_sent(item.seq, time.monotonic())
                try:
                    fut = link.publish(self._topic("data"), payload)
                except PublishError:
                    self.delivery.publish_failed(item.seq)
                    raise
                fut.add_done_callback(lambda f, seq=item.seq: self._published(seq, f))
                window.add(fut)
                fut.add_done_callback(window.discard)
            if self._stop_requested.is_set():
                # graceful: announce offline ourselves (the will is only for abrupt loss)
                with contextlib.suppress(EdgeError, asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*window, return_exceptions=True), 2)
                    await link.publish_wait(self._topic("state"), self._state("offline"), retain=True,
                                            timeout=2)
                return
            # sleep until: more work, the window frees, an ack deadline, or the link drops
            self._wake_deliver.clear()
            waiters = [asyncio.ensure_future(self._wake_deliver.wait())]
            if window and len(window) >= m.inflight_messages:
                waiters += [asyncio.ensure_future(asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED))]
            expiries = [e for e in (self.delivery.next_expiry(), self.events.next_expiry()) if e is not None]
            timeout = None if not expiries else max(min(expiries) - time.monotonic(), 0) + 0.01
            waiters.append(link.closed)
            try:
                if self.delivery.has_work() and len(window) < m.inflight_messages:
                    timeout = 0
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters[:-1]:
                    w.cancel()
            if link.closed.done():
                raise PublishError("connection lost")

    async def _await_metadata(self, link: MqttLink) -> None:
        """Before the agent's first birth: wait (up to the sources' ``metadata_timeout``
        from start) until every source has reported its metadata, so the first birth
        declares the right data types, units and ranges."""
        while self._unknown and self._births == 0:
            remaining = self._metadata_deadline - time.monotonic()
            if remaining <= 0:
                log.warning("edge %s: no metadata yet for %d tags (%s...): declared, and their data "
                            "published, once their source reports it", self.edge, len(self._unknown),
                            ", ".join(sorted(self._unknown)[:3]))
                return
            self._metadata_changed.clear()
            waiters = [asyncio.ensure_future(self._metadata_changed.wait()),
                       asyncio.ensure_future(self._stop_requested.wait())]
            try:
                await asyncio.wait([*waiters, link.closed], timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if link.closed.done():
                raise PublishError("connection lost")
            if self._stop_requested.is_set():
                return

    async def _publish_birth(self, link: MqttLink) -> None:
        """The retained birth: every tag whose metadata is known. Messages held for want of
        a declaration are released once it is out."""
        declared = set(self._undeclared)
        self._undeclared.clear()
        tags = tuple(t for name, t in self._tags.items() if name not in self._unknown)
        birth = BirthMessage(self.edge, self.site, self.session or "-", now_micros(), tags)
        try:
            await link.publish_wait(self._topic("birth"), encode(birth), retain=True)
        except BaseException:
            self._undeclared |= declared
            raise
        self._births += 1
        if self.delivery.release_held():
            self._wake_deliver.set()

    def _needs_birth(self, payload: bytes) -> bool:
        """Whether a data message carries a tag not (or not currently) declared."""
        blocked = self._unknown | self._undeclared
        try:
            return any(s[0] in blocked for s in orjson.loads(payload)["samples"])
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return False  # the outbox's own encoding: cannot happen; send it as it is

    def _event_published(self, event_id: str, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.events.publish_failed(event_id)
            self._wake_deliver.set()
        else:
            self.events.puback(event_id)

    def _published(self, seq: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.delivery.publish_failed(seq)
        else:
            self.delivery.puback(seq)
            self.published += 1
        self._wake_deliver.set()

    async def _backlog_payload(self, seq: int) -> bytes | None:
        payload = self._cache.pop(seq, None)
        if payload is None:
            assert self.outbox is not None
            wanted = [seq, *self.delivery.peek_backlog(PREFETCH)]
            loaded = await asyncio.to_thread(self.outbox.load, wanted)
            payload = loaded.pop(seq, None)
            self._cache.update(loaded)
        return payload


def _opt_str(p) -> str | None:
    return None if p is None else str(p)


async def _finish(tasks: Iterable[asyncio.Task], *, timeout: float) -> None:
    tasks = [t for t in tasks if not t.done()]
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def run_agent(config: EdgeConfig, *, stop: asyncio.Event | None = None) -> None:
    """Run an edge agent until ``stop`` is set (forever when None), then stop gracefully."""
    async with EdgeAgent(config) as agent:
        if stop is None:
            await agent.wait()
        else:
            stopper = asyncio.ensure_future(stop.wait())
            runner = asyncio.ensure_future(agent.wait())
            try:
                await asyncio.wait([stopper, runner], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                if runner.done() and not runner.cancelled() and runner.exception():
                    raise runner.exception()
                runner.cancel()
