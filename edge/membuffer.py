"""Sealed batches waiting in memory for the outbox, and what a memory bound dropped. Pure.

Normally a sealed batch is in memory only for one group commit. When the outbox cannot
commit (disk full, I/O error, a locked file) batches wait here and are retried; so that a
long outage cannot exhaust the gateway's memory, the agent bounds the samples held in
memory (here plus the batcher's pending readings). At the bound the *oldest* samples go,
and each drop is folded into one :class:`Gap` (count, time range, tags) that becomes a
``data-gap`` event committed together with the first batches the outbox accepts again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.batcher import SealedBatch
from edge.contract.messages import EventMessage
from edge.reading import Reading


@dataclass(slots=True)
class Gap:
    """Samples dropped from memory: how many, their time range and tags."""

    samples: int = 0
    start: int | None = None
    end: int | None = None
    tags: set[str] = field(default_factory=set)

    def add(self, ts: Iterable[int], tags: Iterable[str], count: int) -> None:
        ts = list(ts)
        if not ts:
            return
        self.samples += count
        lo, hi = min(ts), max(ts)
        self.start = lo if self.start is None else min(self.start, lo)
        self.end = hi if self.end is None else max(self.end, hi)
        self.tags.update(tags)

    def merge(self, other: Gap) -> None:
        if other.samples:
            self.add((other.start, other.end), other.tags, other.samples)

    def event(self, *, edge: str, site: str, session: str, event_id: str, now_us: int,
              bound: int, error: str | None) -> EventMessage:
        """The ``data-gap`` event recording this drop."""
        return EventMessage(
            edge=edge, site=site, id=event_id, type="data-gap", ts=now_us, sent=now_us,
            start=self.start, end=self.end, tags=tuple(sorted(self.tags)),
            detail={"reason": "max_memory_samples", "session": session, "samples": self.samples,
                    "bound": bound, "outbox_error": error},
        )


class MemoryBuffer:
    """Sealed batches not yet committed, oldest first, plus the :class:`Gap` of what was
    dropped since the last successful commit of a gap event."""

    def __init__(self) -> None:
        self._batches: deque[SealedBatch] = deque()
        self._samples = 0
        self.gap = Gap()

    def __len__(self) -> int:
        """Samples held."""
        return self._samples

    def __bool__(self) -> bool:
        return bool(self._batches)

    def add(self, batch: SealedBatch) -> None:
        if batch.samples:
            self._batches.append(batch)
            self._samples += len(batch.samples)

    def take(self) -> list[SealedBatch]:
        """Everything held, for one commit attempt (give it back with :meth:`put_back`)."""
        out = list(self._batches)
        self._batches.clear()
        self._samples = 0
        return out

    def put_back(self, batches: Sequence[SealedBatch]) -> None:
        """A commit failed: the batches are again the oldest held."""
        for b in reversed(batches):
            self._batches.appendleft(b)
            self._samples += len(b.samples)

    def take_gap(self) -> Gap | None:
        """The drop record to commit as an event (None: nothing dropped); restore it with
        :meth:`restore_gap` if that commit fails."""
        if not self.gap.samples:
            return None
        gap, self.gap = self.gap, Gap()
        return gap

    def restore_gap(self, gap: Gap) -> None:
        gap.merge(self.gap)
        self.gap = gap

    def drop_oldest(self, n: int) -> int:
        """Drop up to ``n`` of the oldest held samples (recorded in :attr:`gap`); returns
        how many were dropped."""
        dropped = 0
        while dropped < n and self._batches:
            b = self._batches[0]
            want = n - dropped
            if len(b.samples) <= want:
                self._batches.popleft()
                gone = b.samples
            else:
                gone, keep = b.samples[:want], b.samples[want:]
                used = {s.ctx for s in keep}
                self._batches[0] = SealedBatch(keep, {k: c for k, c in b.contexts.items() if k in used})
            self.gap.add((s.ts for s in gone), (s.tag for s in gone), len(gone))
            self._samples -= len(gone)
            dropped += len(gone)
        return dropped

    def dropped_readings(self, readings: Sequence[Reading]) -> None:
        """Readings dropped before they were sealed also belong to the gap."""
        self.gap.add((r.ts for r in readings), (r.tag for r in readings), len(readings))
