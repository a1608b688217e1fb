"""Sans-io ingest batcher: collects classified messages until a batch is worth a
transaction (enough samples, enough messages, or the oldest has waited long enough).

Time is passed in (``now``, seconds on any monotonic clock); nothing here sleeps or reads
a clock, so it is tested with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.contract import BirthMessage, EventMessage, StateMessage
from historian.store.rows import sample_count
from historian.store.writer import DataIn, Quarantined, WriteBatch

from .classify import Item


@dataclass
class Taken:
    batch: WriteBatch
    handles: list[Any]  # whatever the shell needs to acknowledge each message, in arrival order
    samples: int


@dataclass
class Batcher:
    max_samples: int = 10_000
    max_delay: float = 0.1
    max_messages: int = 2_000
    _batch: WriteBatch = field(default_factory=WriteBatch)
    _handles: list[Any] = field(default_factory=list)
    _samples: int = 0
    _first_at: float | None = None

    def add(self, item: Item, handle: Any, now: float) -> None:
        b = self._batch
        if isinstance(item, DataIn):
            b.data.append(item)
            self._samples += sample_count(item.msg)
        elif isinstance(item, BirthMessage):
            b.births.append(item)
        elif isinstance(item, EventMessage):
            b.events.append(item)
        elif isinstance(item, StateMessage):
            b.states.append(item)
        elif isinstance(item, Quarantined):
            b.quarantine.append(item)
        else:  # pragma: no cover - classify returns only these
            raise TypeError(f"cannot batch {type(item).__name__}")
        self._handles.append(handle)
        if self._first_at is None:
            self._first_at = now

    def __len__(self) -> int:
        return len(self._handles)

    @property
    def samples(self) -> int:
        return self._samples

    def deadline(self) -> float | None:
        """When the pending batch is due at the latest (None: nothing pending)."""
        return None if self._first_at is None else self._first_at + self.max_delay

    def full(self) -> bool:
        return self._samples >= self.max_samples or len(self._handles) >= self.max_messages

    def ready(self, now: float) -> bool:
        return bool(self._handles) and (self.full() or now >= self._first_at + self.max_delay)

    def take(self) -> Taken:
        taken = Taken(self._batch, self._handles, self._samples)
        self._batch, self._handles, self._samples, self._first_at = WriteBatch(), [], 0, None
        return taken
