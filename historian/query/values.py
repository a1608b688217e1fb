"""How stored values become JSON (pure).

JSON has no NaN or infinities, and a process historian stores them (a failed sensor may
report NaN with a bad quality). Finite numbers are JSON numbers; non-finite ones are the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, so a client can tell them apart
from a missing value (``null``).
"""

from __future__ import annotations

import math

from edge.contract.quality import severity

UINT32 = 0xFFFFFFFF


def encode_float(x: float | None) -> float | str | None:
    """A float as a JSON-safe value: itself when finite, else ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    if x is None:
        return None
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def typed_value(datatype: str, value: float | None, value_text: str | None):
    """The sample value typed by the tag's datatype.

    ``bool`` → ``true``/``false`` (non-zero is true), ``int`` → integer, ``string`` →
    ``value_text``, ``float`` → :func:`encode_float`. A non-finite number stored for an
    ``int`` or ``bool`` tag is shown as its string form rather than guessed at.
    """
    if datatype == "string":
        return value_text
    if value is None:
        return None
    if not math.isfinite(value):
        return encode_float(value)
    if datatype == "bool":
        return value != 0
    if datatype == "int":
        return int(value)
    return value


def quality_code(stored: int | None) -> int:
    """The StatusCode as an unsigned 32-bit integer (it is stored in a signed int4)."""
    return (stored or 0) & UINT32


def quality_fields(stored: int | None) -> dict:
    code = quality_code(stored)
    return {"quality": code, "good": severity(code) == "good"}
