"""Modbus read planning: turn the addresses a poll needs into as few requests as the protocol
allows. Pure.

A request reads at most 125 registers (function codes 3/4) or 2000 bits (1/2). Neighbouring
points are merged into one request while the request stays within that limit and the unused
gap between them is at most ``max_gap`` (reading a few unused registers is cheaper than a
round trip; reading far across unused space risks addresses the device does not have and
answers with an exception).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Protocol limits per request (Modbus application protocol v1.1b3, 6.1-6.4).
MAX_REGISTERS = 125
MAX_BITS = 2000
TABLES = ("holding", "input", "coil", "discrete")
BIT_TABLES = ("coil", "discrete")


@dataclass(frozen=True, slots=True)
class Point:
    """Something to read: ``width`` consecutive registers (or bits) from ``address``."""

    table: str
    address: int
    width: int = 1


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One request: ``count`` items of ``table`` from ``start``; ``points`` are the indices
    of the input points it serves."""

    table: str
    start: int
    count: int
    points: tuple[int, ...]

    def offset(self, point: Point) -> int:
        return point.address - self.start


def limit_for(table: str) -> int:
    return MAX_BITS if table in BIT_TABLES else MAX_REGISTERS


def plan_reads(points: Sequence[Point], *, max_gap: int = 8) -> list[ReadBlock]:
    """Requests covering every point, each within the protocol limit. Raises ValueError for
    a point that cannot be read in one request or lies outside the address space."""
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    by_table: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        if p.table not in TABLES:
            raise ValueError(f"unknown table {p.table!r}")
        if p.width < 1 or p.width > limit_for(p.table):
            raise ValueError(f"point {p} is wider than one request allows")
        if p.address < 0 or p.address + p.width > 65536:
            raise ValueError(f"point {p} lies outside the address space 0..65535")
        by_table.setdefault(p.table, []).append(i)

    blocks: list[ReadBlock] = []
    for table in TABLES:
        idx = sorted(by_table.get(table, ()), key=lambda i: (points[i].address, points[i].width))
        limit = limit_for(table)
        start = end = -1  # current block covers [start, end)
        members: list[int] = []
        for i in idx:
            p = points[i]
            p_end = p.address + p.width
            if members and p.address - end <= max_gap and max(end, p_end) - start <= limit:
                end = max(end, p_end)
                members.append(i)
                continue
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(members)))
            start, end, members = p.address, p_end, [i]
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks
