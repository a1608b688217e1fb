"""Modbus register encoding (pure): engineering values <-> 16-bit registers, per the catalog.

* ``float32``: IEEE 754 single, two registers, high word first (word order ``big``, ``ABCD``).
* ``int32``/``uint32``: two registers, high word first.
* ``int16``/``uint16``: one register (two's complement for ``int16``).
* Scaled encodings: ``raw = round((value - offset) / scale)``, clamped to the type's range.
* A failed sensor (NaN) reads as float32 NaN, or the type's minimum for signed integers
  (``0x8000`` / ``0x80000000``) and maximum for unsigned ones (``0xFFFF`` / ``0xFFFFFFFF``).
"""

from __future__ import annotations

import math
import struct

from simulators.catalog import Catalog, Signal

_RANGES = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF), "int32": (-0x80000000, 0x7FFFFFFF),
           "uint32": (0, 0xFFFFFFFF)}
_INVALID = {"int16": -0x8000, "uint16": 0xFFFF, "int32": -0x80000000, "uint32": 0xFFFFFFFF}


def encode(sig: Signal, value: object) -> list[int]:
    """Registers (or ``[0]``/``[1]`` for bits) holding ``value`` as ``sig`` lays it out."""
    enc = sig.encoding
    if enc == "bool":
        return [1 if value else 0]
    if enc == "float32":
        raw = struct.pack(">f", float(value))  # type: ignore[arg-type]
        hi, lo = struct.unpack(">HH", raw)
        return [hi, lo] if sig.word_order == "big" else [lo, hi]
    number = float(value)  # type: ignore[arg-type]
    lo_lim, hi_lim = _RANGES[enc]
    if math.isnan(number):
        raw_int = _INVALID[enc]
    else:
        raw_int = int(round((number - sig.offset) / sig.scale))
        raw_int = min(max(raw_int, lo_lim), hi_lim)
    if enc in ("int16", "uint16"):
        return [raw_int & 0xFFFF]
    u = raw_int & 0xFFFFFFFF
    hi, lo = u >> 16, u & 0xFFFF
    return [hi, lo] if sig.word_order == "big" else [lo, hi]


def decode(sig: Signal, registers: list[int]) -> float | int | bool:
    """Engineering value from the registers of ``sig`` (inverse of :func:`encode`)."""
    enc = sig.encoding
    if enc == "bool":
        return bool(registers[0])
    if enc in ("float32", "int32", "uint32"):
        a, b = registers[0], registers[1]
        hi, lo = (a, b) if sig.word_order == "big" else (b, a)
        if enc == "float32":
            return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]
        raw = (hi << 16) | lo
        if enc == "int32" and raw >= 0x80000000:
            raw -= 0x100000000
    else:
        raw = registers[0]
        if enc == "int16" and raw >= 0x8000:
            raw -= 0x10000
    value = raw * sig.scale + sig.offset
    if sig.datatype == "int" and sig.scale == 1.0 and sig.offset == 0.0:
        return int(raw)
    return value


class DeviceImage:
    """The four Modbus tables of one device as plain lists (registers, and 0/1 for bits)."""

    def __init__(self, unit: str, unit_id: int, signals: list[Signal]) -> None:
        self.unit = unit
        self.unit_id = unit_id
        self.signals = signals
        self.sizes = {"holding": 0, "input": 0, "coil": 0, "discrete": 0}
        for s in signals:
            self.sizes[s.table] = max(self.sizes[s.table], s.address + s.register_count)
        self.tables: dict[str, list[int]] = {t: [0] * n for t, n in self.sizes.items()}
        self.by_address: dict[tuple[str, int], Signal] = {(s.table, s.address): s for s in signals}

    def render(self, readings: dict) -> None:
        """Encode the current readings into the tables."""
        for s in self.signals:
            r = readings.get(s.name)
            if r is None:
                continue
            regs = encode(s, r.value)
            self.tables[s.table][s.address:s.address + len(regs)] = regs

    def written(self, table: str, address: int, values: list[int]) -> list[tuple[Signal, object]]:
        """Signals completely covered by a client write of ``values`` at ``address``, decoded."""
        out = []
        end = address + len(values)
        for s in self.signals:
            if s.table != table or not s.writable:
                continue
            if address <= s.address and s.address + s.register_count <= end:
                regs = values[s.address - address:s.address - address + s.register_count]
                out.append((s, decode(s, [int(v) for v in regs])))
        return out


def device_images(catalog: Catalog) -> dict[int, DeviceImage]:
    """One image per Modbus unit id."""
    by_unit: dict[str, list[Signal]] = {}
    for s in catalog.modbus():
        by_unit.setdefault(s.unit, []).append(s)
    return {sigs[0].unit_id: DeviceImage(unit, sigs[0].unit_id, sigs) for unit, sigs in by_unit.items()}
