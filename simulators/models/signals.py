"""Declarative signal definitions shared by the unit models.

A model class lists its signals as :class:`SignalSpec` values; the catalog builder turns them
into protocol-complete :class:`simulators.catalog.Signal` records (node ids, register addresses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulators.catalog import DataType, Encoding, Table


@dataclass(frozen=True)
class SignalSpec:
    """One signal of a unit model.

    ``noise`` is the standard deviation of measurement noise added when the value is read
    (engineering units). For Modbus units ``table``/``encoding``/``scale`` say how the value
    is laid out; addresses are assigned in declaration order per table.
    """

    name: str
    datatype: DataType
    eng_unit: str | None
    description: str
    low: float | None = None
    high: float | None = None
    writable: bool = False
    noise: float = 0.0
    table: Table = "input"
    encoding: Encoding = "float32"
    scale: float = 1.0
    offset: float = 0.0
    kind: Literal["measurement", "setpoint", "state", "context", "sample"] = "measurement"


def f(name: str, unit: str | None, desc: str, low: float, high: float, noise: float = 0.0,
      **kw) -> SignalSpec:
    """A float measurement."""
    return SignalSpec(name, "float", unit, desc, low, high, noise=noise, **kw)


def sp(name: str, unit: str | None, desc: str, low: float, high: float, **kw) -> SignalSpec:
    """A writable float setpoint."""
    return SignalSpec(name, "float", unit, desc, low, high, writable=True, kind="setpoint", **kw)
