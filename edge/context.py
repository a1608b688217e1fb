"""The batch-context state machine: which ISA-88 context (batch, phase, recipe) each unit was
in at a given instant.

Context values and tag values arrive on separate notifications and not always in time order
(an OPC UA publish may deliver a phase change after a sample acquired after it). So the
tracker keeps a short history of changes per unit and field, and answers "what was in force
at time ``ts``" rather than "what is in force now". Pure: no I/O, no clock.

Exact for the ways context arrives: a polled source reports in time order and repeats
itself (a run of equal observations is kept as its first and latest, so polling cannot push
real changes out of the bounded history); a subscription reports changes only, possibly late
and out of order. An out-of-order *change* landing inside a compressed run of repeats (only possible
when two sources feed the same field of one unit) is placed by the run's ends only.
"""

from __future__ import annotations

import bisect

from edge.contract.messages import BatchContext
from edge.reading import ContextChange

FIELDS = ("batch", "phase", "recipe")


class _FieldHistory:
    """Changes of one field, sorted by time; bounded (oldest forgotten first)."""

    __slots__ = ("times", "values", "limit")

    def __init__(self, limit: int):
        self.times: list[int] = []
        self.values: list[str | None] = []
        self.limit = limit

    def record(self, ts: int, value: str | None) -> bool:
        """Add an observation; returns True when it changes the history."""
        times, values = self.times, self.values
        i = bisect.bisect_right(times, ts)
        if i and times[i - 1] == ts:
            if values[i - 1] == value:
                return False
            values[i - 1] = value  # same instant: the later notification wins
        elif i == len(times) and i >= 2 and values[i - 1] == value and values[i - 2] == value:
            # A polled source repeats its context every poll: keep a run of equal values as
            # its first and latest observation, so repeats do not push real changes out of
            # the bounded history, and a late change inside the run still lands correctly.
            times[i - 1] = ts
        else:
            times.insert(i, ts)
            values.insert(i, value)
            if len(times) > self.limit:
                del times[0], values[0]
        return True

    def at(self, ts: int) -> str | None:
        if not self.times:
            return None
        i = bisect.bisect_right(self.times, ts)
        # Before the first observation the value is unknown; the first value the edge saw is
        # the best estimate (at start-up a context node reports when it was last written,
        # which can be later than a sample's own older timestamp).
        return self.values[i - 1] if i else self.values[0]


class ContextTracker:
    """Per-unit context history. ``site`` is stamped on every context."""

    def __init__(self, site: str, *, history: int = 64):
        self.site = site
        self._history = history
        self._units: dict[str, dict[str, _FieldHistory]] = {}
        self._cache: dict[tuple, BatchContext] = {}

    def declare(self, unit: str) -> None:
        """Make ``unit`` known (a unit with no context fields still gets site+unit)."""
        self._units.setdefault(unit, {f: _FieldHistory(self._history) for f in FIELDS})

    def apply(self, change: ContextChange) -> bool:
        """Record a change; returns True if the unit's context history changed."""
        self.declare(change.unit)
        return self._units[change.unit][change.field].record(change.ts, change.value)

    def at(self, unit: str | None, ts: int) -> BatchContext | None:
        """The context of ``unit`` in force at ``ts``; None for readings without a unit."""
        if unit is None:
            return None
        fields = self._units.get(unit)
        if fields is None:
            key = (unit, None, None, None)
        else:
            key = (unit, fields["batch"].at(ts), fields["phase"].at(ts), fields["recipe"].at(ts))
        ctx = self._cache.get(key)
        if ctx is None:
            # interned so a batch of samples shares a handful of equal objects
            ctx = BatchContext(self.site, key[0], key[1], key[2], key[3])
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = ctx
        return ctx

    def current(self, unit: str) -> BatchContext | None:
        """The latest known context of ``unit``."""
        return self.at(unit, 2**62)
