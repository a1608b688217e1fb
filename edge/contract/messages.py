"""Message types of the batchwire wire contract, version 1.

These are plain data: no I/O, no validation beyond what the constructor types say.
:mod:`edge.contract.codec` turns them into bytes and back, strictly.

Times on the wire are integers of microseconds since the Unix epoch, UTC. They are
exact (no float rounding), cheap to parse and sort, and carry the microsecond
resolution the contract promises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, Union

SCHEMA_VERSION = 1

#: A sample value: a number, a string or a boolean; ``None`` when the source gave no value
#: (its quality then says why). Non-finite floats (NaN, ±Inf) are valid values.
Value = Union[float, int, str, bool, None]

#: Quality is an OPC UA StatusCode (0 = Good). Sources that are not OPC UA map their
#: conditions onto the same codes (see :mod:`edge.contract.quality`).
Quality = int

DataType = Literal["float", "int", "bool", "string"]
DATA_TYPES: tuple[str, ...] = ("float", "int", "bool", "string")

EdgeState = Literal["online", "offline"]


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch for an aware datetime (naive ones are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """Aware UTC datetime for microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)


def now_micros() -> int:
    return to_micros(datetime.now(timezone.utc))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """The ISA-88 context of a unit at the moment a sample was acquired.

    ``batch``, ``phase`` and ``recipe`` are ``None`` when the unit is idle.
    """

    site: str
    unit: str
    batch: str | None = None
    phase: str | None = None
    recipe: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One acquired value of one tag.

    ``ctx`` names an entry of the enclosing message's ``contexts`` (``None``: no context).
    """

    tag: str
    ts: int  # source timestamp, µs since epoch, UTC
    value: Value
    quality: Quality = 0
    ctx: str | None = None

    def __eq__(self, other: object) -> bool:  # NaN == NaN for a sample's identity
        if not isinstance(other, Sample):
            return NotImplemented
        return (
            self.tag == other.tag
            and self.ts == other.ts
            and self.quality == other.quality
            and self.ctx == other.ctx
            and _same_value(self.value, other.value)
        )

    def __hash__(self) -> int:
        v = "NaN" if isinstance(self.value, float) and math.isnan(self.value) else self.value
        return hash((self.tag, self.ts, v, self.quality, self.ctx))


def _same_value(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A batch of samples from one edge.

    ``(edge, session, seq)`` identifies the message: a session is one lifetime of an edge's
    outbox, ``seq`` increases by one per message within it, starting at 1. Re-sending the
    same message keeps its identity, so the historian applies it once.
    ``historical`` marks messages replayed from the outbox after an outage.
    """

    edge: str
    site: str
    session: str
    seq: int
    sent: int  # µs since epoch
    samples: tuple[Sample, ...]
    contexts: dict[str, BatchContext] = field(default_factory=dict)
    historical: bool = False
    kind: Literal["data"] = "data"


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What an edge declares about a tag in its birth message."""

    name: str
    datatype: DataType = "float"
    unit: str | None = None  # engineering unit, e.g. "degC", "%", "g/L"
    description: str | None = None
    source: str | None = None  # source address, e.g. "opcua:ns=2;s=BR01.TEMP.PV"
    low: float | None = None  # engineering range
    high: float | None = None


@dataclass(frozen=True, slots=True)
class BirthMessage:
    """The tags an edge publishes, sent on every connect before any data."""

    edge: str
    site: str
    session: str
    sent: int
    tags: tuple[TagInfo, ...]
    kind: Literal["birth"] = "birth"


@dataclass(frozen=True, slots=True)
class StateMessage:
    """Edge liveness; ``offline`` is also the MQTT last will. Published retained."""

    edge: str
    site: str
    session: str
    state: EdgeState
    sent: int
    kind: Literal["state"] = "state"


@dataclass(frozen=True, slots=True)
class AckMessage:
    """The historian's end-to-end acknowledgement: these sequence numbers of this session
    are committed to the database (not merely received). ``ranges`` are inclusive
    ``(first, last)`` pairs; ``events`` are ids of :class:`EventMessage` s committed (an
    ack may carry only events, with ``ranges`` empty). An acknowledgement may repeat;
    receiving it twice is harmless.
    """

    edge: str
    session: str
    ranges: tuple[tuple[int, int], ...]
    sent: int
    worker: str | None = None
    events: tuple[str, ...] = ()
    kind: Literal["ack"] = "ack"


@dataclass(frozen=True, slots=True)
class EventMessage:
    """Something that happened at the edge, recorded as an event in the historian.

    ``type`` examples: ``data-gap`` (samples dropped at the edge: ``start``..``end`` and
    ``tags`` say which), ``source-down``, ``source-up``. ``id`` is unique per edge so a
    re-sent event is recorded once.
    """

    edge: str
    site: str
    id: str
    type: str
    ts: int
    sent: int
    start: int | None = None
    end: int | None = None
    tags: tuple[str, ...] = ()
    detail: dict = field(default_factory=dict)
    kind: Literal["event"] = "event"


Message = Union[DataMessage, BirthMessage, StateMessage, AckMessage, EventMessage]
