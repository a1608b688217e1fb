"""Groups readings into the bodies of data messages: at most ``max_samples`` per message,
and no reading waits longer than ``max_delay`` seconds. Pure: the caller passes the clock.

Contexts are resolved when a batch is sealed, not when a reading arrives, so a context
change notified a little after the readings it applies to is still attributed correctly
(see :mod:`edge.context`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.contract.messages import BatchContext, Sample
from edge.reading import Reading

ContextAt = Callable[[str | None, int], BatchContext | None]


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """The body of one data message (without identity: the outbox assigns session and seq)."""

    samples: tuple[Sample, ...]
    contexts: dict[str, BatchContext]

    @property
    def first_ts(self) -> int:
        return min(s.ts for s in self.samples)

    @property
    def last_ts(self) -> int:
        return max(s.ts for s in self.samples)

    @property
    def tags(self) -> list[str]:
        return sorted({s.tag for s in self.samples})


class Batcher:
    def __init__(self, max_samples: int, max_delay: float):
        if max_samples < 1 or max_delay <= 0:
            raise ValueError("max_samples must be >= 1 and max_delay > 0")
        self.max_samples = max_samples
        self.max_delay = max_delay
        self._pending: list[Reading] = []
        self._opened: float | None = None  # clock time of the oldest pending reading

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, reading: Reading, now: float) -> bool:
        """Queue a reading; True when a full batch is ready (call :meth:`seal`)."""
        if not self._pending:
            self._opened = now
        self._pending.append(reading)
        return len(self._pending) >= self.max_samples

    def deadline(self) -> float | None:
        """Clock time by which the pending readings must be sealed (None: nothing pending)."""
        return None if self._opened is None else self._opened + self.max_delay

    def due(self, now: float) -> bool:
        return self._opened is not None and (
            len(self._pending) >= self.max_samples or now >= self._opened + self.max_delay
        )

    def drop_oldest(self, n: int) -> list[Reading]:
        """Remove and return up to ``n`` of the oldest pending readings (a memory bound)."""
        gone = self._pending[:n]
        del self._pending[:n]
        if not self._pending:
            self._opened = None
        return gone

    def seal(self, context_at: ContextAt) -> SealedBatch | None:
        """Take up to ``max_samples`` pending readings as one batch (None when empty)."""
        if not self._pending:
            return None
        taken = self._pending[: self.max_samples]
        rest = self._pending[self.max_samples :]
        self._pending = rest
        # the rest keeps waiting from "now-ish"; its true arrival is not tracked, so the
        # conservative choice is that it is already due
        self._opened = self._opened if rest else None
        keys: dict[BatchContext, str] = {}
        samples = []
        for r in taken:
            ctx = context_at(r.unit, r.ts)
            key = None
            if ctx is not None:
                key = keys.get(ctx)
                if key is None:
                    key = keys[ctx] = f"c{len(keys)}"
            samples.append(Sample(r.tag, r.ts, r.value, r.quality, key))
        return SealedBatch(tuple(samples), {k: c for c, k in keys.items()})
