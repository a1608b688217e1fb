"""What the edge last captured of each tag. Pure: the outbox persists it, the agent asks it.

Two facts per tag, kept in the outbox in the same transaction as the messages they
describe, so they survive restarts exactly as far as the samples do:

``last_ts``
    the latest source time of any sample captured for the tag: where a hole in its series
    begins if the edge stops (see :mod:`edge.downtime`).
``sample``
    ``(ts, value, quality)`` of the last sample the *equipment* reported. A new OPC UA
    subscription (agent restart, reconnect) reports the current value of every monitored
    item; when it did not change, that report is an exact repeat of this sample (same source
    timestamp) and :meth:`LastSeen.is_repeat` says so, so it is not stored twice.

The sample the source records itself when its connection is lost (no value, quality
``BadNotConnected``) is no report of the equipment: it moves ``last_ts`` but does not
replace ``sample``, so the value re-observed after the reconnect is still recognised.

Only an exact repeat of that one sample counts (same tag, source timestamp, value, value
type and quality; NaN equals NaN): anything else is a new sample and is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge.contract.messages import Sample, Value
from edge.contract.quality import BAD_NOT_CONNECTED

#: ``(ts, value, quality)`` of one sample.
Observed = tuple[int, Value, int]


@dataclass(frozen=True, slots=True)
class TagState:
    last_ts: int
    sample: Observed | None  # None: only connection-loss records were captured so far


def is_connection_record(value: Value, quality: int) -> bool:
    """The record a source makes of a lost connection (not a value the equipment sent)."""
    return value is None and quality == BAD_NOT_CONNECTED


def same_value(a: Value, b: Value) -> bool:
    """Equality for a sample's identity: NaN equals NaN, and ``1``, ``1.0`` and ``True`` differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b


class LastSeen:
    """Per tag, the :class:`TagState` of what was accepted so far."""

    def __init__(self, state: Mapping[str, TagState] | None = None):
        self._state: dict[str, TagState] = dict(state or {})

    def __len__(self) -> int:
        return len(self._state)

    def get(self, tag: str) -> TagState | None:
        return self._state.get(tag)

    def snapshot(self) -> dict[str, TagState]:
        return dict(self._state)

    def is_repeat(self, tag: str, ts: int, value: Value, quality: int) -> bool:
        """Whether this is an exact repeat of the tag's last equipment sample."""
        st = self._state.get(tag)
        if st is None or st.sample is None:
            return False
        s_ts, s_value, s_quality = st.sample
        return s_ts == ts and s_quality == quality and same_value(s_value, value)

    def note(self, tag: str, ts: int, value: Value, quality: int) -> None:
        """A sample of ``tag`` was accepted."""
        st = self._state.get(tag)
        last_ts = ts if st is None else max(st.last_ts, ts)
        if is_connection_record(value, quality):
            sample = None if st is None else st.sample
        else:
            sample = (ts, value, quality)
        self._state[tag] = TagState(last_ts, sample)


def summarize(samples: Iterable[Sample]) -> dict[str, TagState]:
    """What a sequence of captured samples (in capture order) changes, per tag: the outbox
    merges it into its stored state with :func:`merge`."""
    seen = LastSeen()
    for s in samples:
        seen.note(s.tag, s.ts, s.value, s.quality)
    return seen.snapshot()


def merge(old: TagState | None, new: TagState) -> TagState:
    """Stored state followed by the state of later captures."""
    if old is None:
        return new
    return TagState(max(old.last_ts, new.last_ts), new.sample if new.sample is not None else old.sample)


# ---------------------------------------------------------------------- storage form

def encode_value(value: Value) -> tuple[str, str | None]:
    """``(type, text)`` that round-trips exactly (SQLite would store NaN as NULL and cannot
    tell ``True`` from ``1``)."""
    if value is None:
        return "n", None
    if isinstance(value, bool):
        return "b", "1" if value else "0"
    if isinstance(value, int):
        return "i", str(value)
    if isinstance(value, float):
        return "f", repr(value)
    return "s", str(value)


def decode_value(kind: str, text: str | None) -> Value:
    if kind == "n":
        return None
    if kind == "b":
        return text == "1"
    if kind == "i":
        return int(text)  # type: ignore[arg-type]
    if kind == "f":
        return float(text)  # type: ignore[arg-type]
    if kind == "s":
        return text
    raise ValueError(f"unknown stored value type {kind!r}")
