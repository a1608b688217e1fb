"""Completeness over message sequence numbers (pure).

Every data message carries ``(edge, session, seq)`` with ``seq`` counting 1, 2, 3 … per
session. The database reports what it committed as *islands*: maximal runs of consecutive
sequence numbers (computed in SQL with the gaps-and-islands pattern, so the work here is
proportional to the number of gaps, not of messages). This module turns islands into
missing ranges and decides which of them belong to a time range.

All sequence ranges are inclusive ``(first, last)`` pairs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

SeqRange = tuple[int, int]


def merge_ranges(ranges: Iterable[SeqRange]) -> list[SeqRange]:
    """Sort ranges and merge the ones that overlap or touch. Empty ranges (last < first) are dropped."""
    merged: list[SeqRange] = []
    for first, last in sorted(r for r in ranges if r[1] >= r[0]):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def missing_ranges(received: Iterable[SeqRange], first: int = 1, last: int | None = None) -> list[SeqRange]:
    """The sequence numbers in ``[first, last]`` not covered by ``received``, as ranges.

    ``last`` defaults to the highest received number: loss after the last message that
    arrived cannot be seen from sequence numbers alone. ``received`` need not be sorted or
    disjoint.
    """
    merged = merge_ranges(received)
    if last is None:
        if not merged:
            return []
        last = merged[-1][1]
    gaps: list[SeqRange] = []
    cursor = first
    for lo, hi in merged:
        if hi < cursor:
            continue
        if lo > last:
            break
        if lo > cursor:
            gaps.append((cursor, min(lo - 1, last)))
        cursor = hi + 1
    if cursor <= last:
        gaps.append((cursor, last))
    return gaps


def intersect(ranges: Iterable[SeqRange], seqs: Iterable[int]) -> list[SeqRange]:
    """The members of ``seqs`` that lie in ``ranges``, as maximal sorted runs."""
    merged = merge_ranges(ranges)
    starts = [a for a, _ in merged]
    inside = []
    for s in set(seqs):
        i = bisect_right(starts, s) - 1
        if i >= 0 and s <= merged[i][1]:
            inside.append((s, s))
    return merge_ranges(inside)


def range_count(ranges: Iterable[SeqRange]) -> int:
    """How many sequence numbers the (disjoint) ranges hold."""
    return sum(last - first + 1 for first, last in ranges)


@dataclass(frozen=True, slots=True)
class Island:
    """A run of consecutive committed sequence numbers of one session.

    ``head_time`` is the earliest sample time of its first message, ``tail_time`` the latest
    sample time of its last message: the bounds of the gaps on either side.
    """

    first_seq: int
    last_seq: int
    head_time: datetime
    tail_time: datetime


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing sequence numbers ``first_seq..last_seq``. Their samples lie between ``after``
    (end of the message before; ``None`` when the gap starts the session) and ``before``
    (start of the message after)."""

    first_seq: int
    last_seq: int
    after: datetime | None
    before: datetime

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether the time the gap must lie in meets ``[start, end)``. With no earlier
        message the gap is placed at ``before``: nothing bounds it from below."""
        lo = self.before if self.after is None else min(self.after, self.before)
        hi = self.before if self.after is None else max(self.after, self.before)
        return (end is None or lo < end) and (start is None or hi >= start)


def gaps_between(islands: Sequence[Island]) -> list[Gap]:
    """The gaps of a session, counting from sequence number 1. ``islands`` sorted by seq."""
    gaps: list[Gap] = []
    previous: Island | None = None
    expected_next = 1
    for island in islands:
        if island.first_seq > expected_next:
            gaps.append(Gap(expected_next, island.first_seq - 1,
                            previous.tail_time if previous else None, island.head_time))
        if island.last_seq + 1 > expected_next:
            expected_next = island.last_seq + 1
            previous = island
    return gaps


@dataclass(frozen=True, slots=True)
class SessionCompleteness:
    first_seq: int
    last_seq: int
    expected: int
    received: int
    gaps: tuple[Gap, ...]

    @property
    def missing(self) -> list[SeqRange]:
        return [(g.first_seq, g.last_seq) for g in self.gaps]


def session_completeness(
    islands: Sequence[Island],
    in_range: SeqRange | None,
    start: datetime | None,
    end: datetime | None,
) -> SessionCompleteness | None:
    """Completeness of one session over a time range.

    ``in_range`` is the lowest and highest seq of the committed messages whose samples lie in
    the range (``None`` if there are none). The window of sequence numbers reported is that
    span widened by every gap whose time bounds meet the range — so messages lost at the start
    of a session count from 1, and an outage spanning the whole range is still reported. Inside
    the window ``expected = last - first + 1 = received + missing``. ``None`` when the session
    has nothing in the range.
    """
    gaps = gaps_between(islands)
    lows: list[int] = []
    highs: list[int] = []
    if in_range is not None:
        lows.append(in_range[0])
        highs.append(in_range[1])
    for gap in gaps:
        if gap.overlaps(start, end):
            lows.append(gap.first_seq)
            highs.append(gap.last_seq)
    if not lows:
        return None
    first, last = min(lows), max(highs)
    inside = tuple(g for g in gaps if g.first_seq >= first and g.last_seq <= last)
    received = sum(
        max(0, min(i.last_seq, last) - max(i.first_seq, first) + 1) for i in islands)
    return SessionCompleteness(first, last, last - first + 1, received, inside)
