"""What one Modbus poll reads and how its answers become readings and context values. Pure:
the I/O shell (:mod:`edge.sources.modbus`) executes the blocks and passes each answer (or
the quality code of its failure) to :meth:`PollPlan.interpret`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.config import ContextRegister, ModbusSource, ModbusTag
from edge.reading import ContextChange, Reading
from edge.sources import quality, registers
from edge.sources.readplan import BIT_TABLES, Point, ReadBlock, plan_reads


@dataclass(frozen=True, slots=True)
class _TagItem:
    tag: ModbusTag


@dataclass(frozen=True, slots=True)
class _ContextItem:
    field: str
    spec: ContextRegister


def context_value(words: Sequence[int], spec: ContextRegister) -> str | None:
    """The context value a register spec reads as (None for empty text)."""
    if spec.encoding == "string":
        return registers.decode_text(words) or None
    n = registers.register_count(spec.encoding)
    number = registers.decode(list(words[:n]), spec.encoding, spec.word_order)
    text = spec.names[number] if number in spec.names else spec.format.format(number)
    return text or None  # an empty name means "none" (e.g. idle)


class PollPlan:
    def __init__(self, settings: ModbusSource):
        self.settings = settings
        self.unit = settings.context.unit if settings.context else None
        points: list[Point] = []
        items: list[_TagItem | _ContextItem] = []
        for t in settings.tags:
            width = 1 if t.table in BIT_TABLES else registers.register_count(t.encoding)
            points.append(Point(t.table, t.address, width))
            items.append(_TagItem(t))
        self.static: dict[str, str] = {}
        if settings.context:
            for field in ("batch", "phase", "recipe"):
                spec = getattr(settings.context, field)
                if isinstance(spec, str):
                    self.static[field] = spec
                elif spec is not None:
                    width = spec.count if spec.encoding == "string" else registers.register_count(spec.encoding)
                    points.append(Point(spec.table, spec.address, width))
                    items.append(_ContextItem(field, spec))
        self.points = points
        self._items = items
        self.blocks: list[ReadBlock] = plan_reads(points, max_gap=settings.max_gap)

    def static_context(self, ts: int) -> list[ContextChange]:
        """The fixed context values (once, at start)."""
        if self.unit is None:
            return []
        return [ContextChange(self.unit, f, v, ts) for f, v in self.static.items()]  # type: ignore[arg-type]

    def interpret(self, block: ReadBlock, data: Sequence[int] | Sequence[bool] | None,
                  failure: int, ts: int) -> tuple[list[Reading], list[ContextChange]]:
        """Readings and context values of one block: ``data`` is the registers (or bits) read,
        or None with ``failure`` the quality code saying why there is none."""
        readings: list[Reading] = []
        changes: list[ContextChange] = []
        for i in block.points:
            item, point = self._items[i], self.points[i]
            if isinstance(item, _ContextItem):
                if data is not None and self.unit is not None:
                    off = block.offset(point)
                    try:
                        value = context_value([int(w) for w in data[off:off + point.width]], item.spec)
                    except (registers.RegisterDecodeError, ValueError, IndexError, KeyError):
                        continue  # an undecodable context keeps the last known one
                    changes.append(ContextChange(self.unit, item.field, value, ts))  # type: ignore[arg-type]
                continue
            tag = item.tag
            if data is None:
                readings.append(Reading(tag.name, ts, None, failure, self.unit))
                continue
            off = block.offset(point)
            chunk = data[off:off + point.width]
            try:
                if len(chunk) != point.width:
                    raise registers.RegisterDecodeError("short reply")
                if tag.table in BIT_TABLES:
                    value = bool(chunk[0])
                else:
                    value = registers.decode([int(w) for w in chunk], tag.encoding, tag.word_order)
                    value = registers.scaled(value, tag.scale, tag.offset)
                    if tag.resolved_datatype == "float" and not isinstance(value, bool):
                        value = float(value)
                readings.append(Reading(tag.name, ts, value, quality.GOOD, self.unit))
            except registers.RegisterDecodeError:
                readings.append(Reading(tag.name, ts, None, quality.decode_failure(), self.unit))
        return readings, changes
