"""Decoding Modbus register contents into values. Pure.

Registers are 16-bit big-endian words (the protocol fixes the byte order within a word);
devices disagree on the order of words in 32/64-bit values, hence ``word_order``:
``big`` puts the most significant word first (register N holds the high word), ``little``
the least significant.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

#: encoding -> (registers, struct format of the big-endian bytes)
_FORMATS: dict[str, tuple[int, str]] = {
    "int16": (1, ">h"),
    "uint16": (1, ">H"),
    "int32": (2, ">i"),
    "uint32": (2, ">I"),
    "float32": (2, ">f"),
    "int64": (4, ">q"),
    "uint64": (4, ">Q"),
    "float64": (4, ">d"),
    "bool": (1, ">H"),
}


class RegisterDecodeError(ValueError):
    pass


def register_count(encoding: str) -> int:
    """Registers one value of ``encoding`` occupies."""
    try:
        return _FORMATS[encoding][0]
    except KeyError:
        raise RegisterDecodeError(f"unknown encoding {encoding!r}") from None


def _ordered(words: Sequence[int], word_order: str) -> Sequence[int]:
    if word_order == "big":
        return words
    if word_order == "little":
        return list(reversed(words))
    raise RegisterDecodeError(f"word_order must be 'big' or 'little', got {word_order!r}")


def decode(words: Sequence[int], encoding: str, word_order: str = "big") -> int | float | bool:
    """Value of ``words`` (exactly :func:`register_count` registers, each 0..65535)."""
    n, fmt = _FORMATS.get(encoding, (0, ""))
    if not n:
        raise RegisterDecodeError(f"unknown encoding {encoding!r}")
    if len(words) != n:
        raise RegisterDecodeError(f"{encoding} needs {n} registers, got {len(words)}")
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise RegisterDecodeError(f"register values must be 0..65535, got {list(words)}")
    if encoding == "bool":
        return words[0] != 0
    raw = b"".join(w.to_bytes(2, "big") for w in _ordered(words, word_order))
    return struct.unpack(fmt, raw)[0]


def encode(value: int | float | bool, encoding: str, word_order: str = "big") -> list[int]:
    """Registers holding ``value`` (the inverse of :func:`decode`; for devices and tests)."""
    n, fmt = _FORMATS.get(encoding, (0, ""))
    if not n:
        raise RegisterDecodeError(f"unknown encoding {encoding!r}")
    if encoding == "bool":
        return [1 if value else 0]
    try:
        raw = struct.pack(fmt, value)
    except struct.error as err:
        raise RegisterDecodeError(f"{value!r} does not fit {encoding}: {err}") from err
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return list(_ordered(words, word_order))


def decode_text(words: Sequence[int]) -> str:
    """ASCII text, two characters per register (high byte first), NULs and padding stripped."""
    raw = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()


def scaled(value: int | float | bool, scale: float, offset: float) -> int | float | bool:
    """Engineering value ``value * scale + offset``; unchanged when that is the identity."""
    if isinstance(value, bool) or (scale == 1.0 and offset == 0.0):
        return value
    return value * scale + offset
