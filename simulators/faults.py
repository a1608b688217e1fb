"""Fault specifications and the pure overlay that applies signal faults to readings.

Faults come from the plant file (``[[fault]]`` with ``at``) or at run time (control port,
``batchwire sim fault``). Each start and end is logged as a :class:`FaultRecord` with the
simulated time, so tests can assert on what happened when.

Kinds and their ``target``:

==================  ===========================  ==============================================
kind                target                       effect
==================  ===========================  ==============================================
opcua_restart       (none)                       OPC UA server stops for ``downtime`` wall seconds
                                                 and comes back; with ``renumber`` node ids get a
                                                 ``~<generation>`` suffix (browse names unchanged)
drop_connections    ``opcua``/``modbus``/empty    open client connections are closed
frozen              tag                          value stops changing (status stays Good)
spike               tag                          ``magnitude`` added for ``duration`` (default: 1 publish)
drift               tag                          offset grows by ``magnitude`` per simulated hour
noise               tag                          extra Gaussian noise, sigma ``magnitude``
bad_quality         tag                          status ``status`` (default ``Bad``) on the value
sensor_failure      tag                          BadSensorFailure; Modbus floats read NaN
modbus_exception    Modbus unit (e.g. ``RM01``)  every request answered with exception ``magnitude``
                                                 (default 4, server device failure)
modbus_timeout      Modbus unit                  requests are not answered (client times out)
clock_skew          unit                         source timestamps shifted by ``magnitude`` seconds
contamination       bioreactor                   bacterial growth: DO collapses, pH falls
==================  ===========================  ==============================================
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from simulators import status as st
from simulators.duration import Duration

FaultKind = Literal[
    "opcua_restart", "drop_connections", "frozen", "spike", "drift", "noise", "bad_quality",
    "sensor_failure", "modbus_exception", "modbus_timeout", "clock_skew", "contamination",
]
SIGNAL_FAULTS = frozenset({"frozen", "spike", "drift", "noise", "bad_quality", "sensor_failure"})
UNIT_FAULTS = frozenset({"modbus_exception", "modbus_timeout", "clock_skew", "contamination"})
SERVER_FAULTS = frozenset({"opcua_restart", "drop_connections"})


class FaultError(ValueError):
    """A fault specification that cannot be applied to this plant (names the problem)."""


class FaultSpec(BaseModel):
    """One fault. ``at``/``duration`` are simulated time; ``downtime`` is wall-clock seconds."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    target: str = ""
    at: Duration | None = None
    duration: Duration | None = None
    magnitude: float | None = None
    status: str | None = None
    renumber: bool = False
    downtime: float = 2.0

    @model_validator(mode="after")
    def _check(self) -> "FaultSpec":
        if self.kind in SIGNAL_FAULTS | UNIT_FAULTS and not self.target:
            raise ValueError(f"fault kind {self.kind!r} needs a target")
        if self.kind == "drop_connections" and self.target not in ("", "opcua", "modbus"):
            raise ValueError("drop_connections target must be 'opcua', 'modbus' or empty")
        if self.status is not None and self.status not in st.BY_NAME:
            raise ValueError(f"status {self.status!r} is not one of {sorted(st.BY_NAME)}")
        if self.kind in ("drift", "noise", "spike") and self.magnitude is None:
            raise ValueError(f"fault kind {self.kind!r} needs a magnitude")
        if self.downtime < 0:
            raise ValueError("downtime cannot be negative")
        return self


@dataclass(frozen=True)
class FaultRecord:
    """A logged fault event: ``event`` is ``start`` or ``end``."""

    fault_id: int
    sim_time: datetime
    kind: str
    target: str
    event: str
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"fault_id": self.fault_id, "sim_time": self.sim_time.isoformat(), "kind": self.kind,
                "target": self.target, "event": self.event, "detail": self.detail}


@dataclass
class ActiveFault:
    """A running fault and the memory some kinds need (frozen value)."""

    fault_id: int
    spec: FaultSpec
    start_s: float
    end_s: float | None
    frozen: tuple[object, int] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def expired(self, t: float) -> bool:
        return self.end_s is not None and t >= self.end_s


def apply_signal_fault(fault: ActiveFault, value: object, status: int, t: float,
                       rng: random.Random) -> tuple[object, int]:
    """The reading a client sees while ``fault`` is active (pure; ``t`` in simulated s)."""
    kind = fault.spec.kind
    if kind == "frozen":
        if fault.frozen is None:
            fault.frozen = (value, status)
        return fault.frozen
    if kind == "bad_quality":
        return value, st.BY_NAME[fault.spec.status or "Bad"]
    if kind == "sensor_failure":
        return (math.nan if isinstance(value, float) else value), st.BAD_SENSOR_FAILURE
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value, status
    mag = float(fault.spec.magnitude or 0.0)
    if kind == "spike":
        return type(value)(value + mag), status
    if kind == "drift":
        return type(value)(value + mag * (t - fault.start_s) / 3600.0), status
    if kind == "noise":
        return type(value)(value + rng.gauss(0.0, mag)), status
    return value, status
