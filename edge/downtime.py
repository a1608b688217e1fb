"""The hole an agent restart leaves in the record, as one ``data-gap`` event. Pure.

While the agent is not running nothing is acquired: OPC UA servers and Modbus devices do
not keep values for a client that is gone. When the agent starts again on a continued
outbox it knows, per tag, the source time of the last sample captured before the stop
(:mod:`edge.lastseen`). The first sample of each tag after the restart closes that tag's
hole: values the equipment produced in ``(last before, first after)`` may be missing.

A tag whose first report after the restart is an exact repeat of its last captured sample
(same source timestamp: an OPC UA subscription re-reporting an unchanged value) did not
change while the agent was down; it has no hole and is listed as ``unchanged``.

One event covers the restart: ``start``/``end`` span every tag's hole, ``tags`` lists the
tags that may miss values, ``detail["ranges"]`` gives each one's own ``[start, end]``. It is
ready once every tag known from before has reported, or at a deadline the agent chooses
(tags still silent then are listed as ``not_seen``, their holes reaching the event's time).

The record of a restart whose event has not been committed yet is stored in the outbox
(:meth:`Downtime.to_record`): when the agent stops again before that, the next start merges
it (:meth:`Downtime.resume`), so the earlier hole is reported, within a wider range, rather
than forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge.contract.messages import EventMessage


class Downtime:
    def __init__(self, before: Mapping[str, int], *, restarted: int, restarts: int = 1):
        """``before``: per tag, the source time of the last sample captured before the stop
        (only tags the agent still acquires); ``restarted``: µs when this run started."""
        self.before = dict(before)
        self.restarted = restarted
        self.restarts = restarts
        self.first: dict[str, int] = {}
        self.unchanged: set[str] = set()

    @classmethod
    def resume(cls, record: Mapping[str, Any] | None, last_ts: Mapping[str, int], tags: Iterable[str], *,
               restarted: int) -> Downtime | None:
        """This restart's downtime, merged with a stored ``record`` of an earlier restart whose
        event was never committed (its older "before" times win). None: no tag of ``tags``
        was ever captured, so there is no hole to report."""
        wanted = set(tags)
        before = {t: ts for t, ts in last_ts.items() if t in wanted}
        restarts = 1
        if record:
            for t, ts in record.get("before", {}).items():
                if t in wanted:
                    before[t] = min(int(ts), before.get(t, int(ts)))
            restarted = min(restarted, int(record.get("restarted", restarted)))
            restarts += int(record.get("restarts", 1))
        if not before:
            return None
        return cls(before, restarted=restarted, restarts=restarts)

    def to_record(self) -> dict[str, Any]:
        return {"before": self.before, "restarted": self.restarted, "restarts": self.restarts}

    def observe(self, tag: str, ts: int, *, repeat: bool) -> bool:
        """The first report of ``tag`` after the restart (later ones change nothing);
        ``repeat``: an exact repeat of its last sample. Returns :attr:`complete`."""
        if tag in self.before and tag not in self.first and tag not in self.unchanged:
            if repeat:
                self.unchanged.add(tag)
            else:
                self.first[tag] = ts
        return self.complete

    @property
    def complete(self) -> bool:
        """Every tag known from before has reported."""
        return len(self.first) + len(self.unchanged) >= len(self.before)

    @property
    def observed(self) -> bool:
        return bool(self.first or self.unchanged)

    def event(self, *, edge: str, site: str, session: str, now_us: int) -> EventMessage | None:
        """The ``data-gap`` event of this restart (None: every tag reported unchanged)."""
        ranges: dict[str, list[int]] = {}
        not_seen = []
        for tag, start in sorted(self.before.items()):
            if tag in self.unchanged:
                continue
            if tag in self.first:
                ranges[tag] = [start, max(start, self.first[tag])]
            else:
                ranges[tag] = [start, max(start, now_us)]
                not_seen.append(tag)
        if not ranges:
            return None
        return EventMessage(
            edge=edge, site=site, id=f"{session}-restart-{self.restarted}", type="data-gap",
            ts=now_us, sent=now_us,
            start=min(r[0] for r in ranges.values()), end=max(r[1] for r in ranges.values()),
            tags=tuple(ranges),
            detail={"reason": "edge-restart", "session": session, "restarted": self.restarted,
                    "restarts": self.restarts, "ranges": ranges, "unchanged": sorted(self.unchanged),
                    "not_seen": not_seen},
        )
