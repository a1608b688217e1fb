"""Encode and strictly decode wire-contract messages (orjson).

Decoding never trusts the payload: every field is checked for presence and type, unknown
message kinds and schema versions are refused, and the error says what is wrong and where
(``DecodeError.reason`` is a short machine-readable code, ``str(err)`` the explanation).

Unknown *fields* are ignored, so a later minor revision can add fields without breaking
older readers; anything that changes the meaning of an existing field bumps ``v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from .messages import (
    DATA_TYPES,
    SCHEMA_VERSION,
    AckMessage,
    BatchContext,
    BirthMessage,
    DataMessage,
    EventMessage,
    Message,
    Sample,
    StateMessage,
    TagInfo,
)

#: Payloads larger than this are refused before parsing.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

_NONFINITE_OUT = {"nan": "NaN", "inf": "Inf", "-inf": "-Inf"}
_NONFINITE_IN = {"NaN": math.nan, "Inf": math.inf, "-Inf": -math.inf}


class DecodeError(ValueError):
    """A payload that is not a valid v1 message. ``reason`` is one of
    ``oversized``, ``not-json``, ``wrong-version``, ``unknown-kind``, ``invalid``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- encode


def _wire_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return {"f": _NONFINITE_OUT[repr(v)]}
    return v


def encode(msg: Message) -> bytes:
    """Serialise a message to its wire form."""
    if isinstance(msg, DataMessage):
        body: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "kind": "data",
            "edge": msg.edge,
            "site": msg.site,
            "session": msg.session,
            "seq": msg.seq,
            "sent": msg.sent,
            "historical": msg.historical,
            "contexts": {
                k: {
                    "site": c.site,
                    "unit": c.unit,
                    "batch": c.batch,
                    "phase": c.phase,
                    "recipe": c.recipe,
                }
                for k, c in msg.contexts.items()
            },
            "samples": [
                [s.tag, s.ts, _wire_value(s.value), s.quality, s.ctx] for s in msg.samples
            ],
        }
    elif isinstance(msg, BirthMessage):
        body = {
            "v": SCHEMA_VERSION,
            "kind": "birth",
            "edge": msg.edge,
            "site": msg.site,
            "session": msg.session,
            "sent": msg.sent,
            "tags": [
                {
                    "name": t.name,
                    "datatype": t.datatype,
                    "unit": t.unit,
                    "description": t.description,
                    "source": t.source,
                    "low": t.low,
                    "high": t.high,
                }
                for t in msg.tags
            ],
        }
    elif isinstance(msg, StateMessage):
        body = {
            "v": SCHEMA_VERSION,
            "kind": "state",
            "edge": msg.edge,
            "site": msg.site,
            "session": msg.session,
            "state": msg.state,
            "sent": msg.sent,
        }
    elif isinstance(msg, AckMessage):
        body = {
            "v": SCHEMA_VERSION,
            "kind": "ack",
            "edge": msg.edge,
            "session": msg.session,
            "ranges": [list(r) for r in msg.ranges],
            "sent": msg.sent,
            "worker": msg.worker,
            "events": list(msg.events),
        }
    elif isinstance(msg, EventMessage):
        body = {
            "v": SCHEMA_VERSION,
            "kind": "event",
            "edge": msg.edge,
            "site": msg.site,
            "id": msg.id,
            "type": msg.type,
            "ts": msg.ts,
            "sent": msg.sent,
            "start": msg.start,
            "end": msg.end,
            "tags": list(msg.tags),
            "detail": msg.detail,
        }
    else:  # pragma: no cover - guarded by the type checker
        raise TypeError(f"not a wire message: {type(msg).__name__}")
    return orjson.dumps(body)


# --------------------------------------------------------------------------- decode


def _invalid(where: str, what: str) -> DecodeError:
    return DecodeError("invalid", f"{where}: {what}")


def _get(obj: dict, key: str, types: type | tuple[type, ...], where: str, *, optional=False):
    if key not in obj:
        if optional:
            return None
        raise _invalid(f"{where}.{key}", "missing")
    val = obj[key]
    if val is None and optional:
        return None
    # bool is an int subclass: never accept it where an int is meant
    if isinstance(val, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _invalid(f"{where}.{key}", f"expected {_type_names(types)}, got bool")
    if not isinstance(val, types):
        raise _invalid(f"{where}.{key}", f"expected {_type_names(types)}, got {type(val).__name__}")
    return val


def _type_names(types) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _nonempty_str(obj: dict, key: str, where: str) -> str:
    val = _get(obj, key, str, where)
    if not val:
        raise _invalid(f"{where}.{key}", "must not be empty")
    return val


def _decode_value(raw: Any, where: str):
    if raw is None or isinstance(raw, (str, bool, int, float)):
        return raw
    if isinstance(raw, dict) and len(raw) == 1 and raw.get("f") in _NONFINITE_IN:
        return _NONFINITE_IN[raw["f"]]
    raise _invalid(where, f"value must be a number, string, boolean, null or a non-finite "
                          f"marker {{\"f\": \"NaN\"|\"Inf\"|\"-Inf\"}}, got {raw!r:.60}")


def _data_contexts(obj: dict) -> dict[str, BatchContext]:
    raw_ctx = _get(obj, "contexts", dict, "data", optional=True) or {}
    contexts: dict[str, BatchContext] = {}
    for key, c in raw_ctx.items():
        cw = f"data.contexts[{key!r}]"
        if not isinstance(c, dict):
            raise _invalid(cw, f"expected object, got {type(c).__name__}")
        contexts[key] = BatchContext(
            site=_nonempty_str(c, "site", cw),
            unit=_nonempty_str(c, "unit", cw),
            batch=_get(c, "batch", str, cw, optional=True),
            phase=_get(c, "phase", str, cw, optional=True),
            recipe=_get(c, "recipe", str, cw, optional=True),
        )
    return contexts


def _check_samples_slow(raw_samples: list, contexts: dict) -> None:
    """Validate sample rows one by one and raise the error for the first bad one (the
    reference rules; :func:`_check_samples` is the fast path that falls back to this)."""
    for i, s in enumerate(raw_samples):
        if type(s) is not list or len(s) != 5:
            raise _invalid(f"data.samples[{i}]", "expected [tag, ts, value, quality, ctx]")
        tag, ts, value, quality, ctx = s
        if type(tag) is not str or not tag:
            raise _invalid(f"data.samples[{i}][0]", "tag must be a non-empty string")
        if type(ts) is not int:
            raise _invalid(f"data.samples[{i}][1]", "ts must be an integer of µs since epoch")
        if type(quality) is not int or quality < 0 or quality > 0xFFFFFFFF:
            raise _invalid(f"data.samples[{i}][3]", "quality must be a uint32 StatusCode")
        if ctx is not None and ctx not in contexts:
            raise _invalid(f"data.samples[{i}][4]", f"unknown context reference {ctx!r}")
        if type(value) not in (float, int, str, bool) and value is not None:
            _decode_value(value, f"data.samples[{i}][2]")


_PLAIN_VALUE_TYPES = frozenset((float, int, str, bool, type(None)))


def _check_samples(raw_samples: list, contexts: dict) -> list:
    """Validate the sample rows of a data message in one pass and return them as rows
    ``[tag, ts, value, quality, ctx]`` (the parsed lists themselves; a non-finite marker
    value is replaced by its float in place). Raises the same :class:`DecodeError` as the
    reference rules, for the same first bad sample."""
    plain = _PLAIN_VALUE_TYPES
    markers = None
    for s in raw_samples:
        # hot loop: one unpacking and identity checks; any doubt goes to the slow path
        if type(s) is not list or len(s) != 5:
            break
        tag, ts, value, quality, ctx = s
        if (type(tag) is not str or not tag or type(ts) is not int or type(quality) is not int
                or not 0 <= quality <= 0xFFFFFFFF
                or (ctx is not None and ctx not in contexts)):
            break
        if type(value) not in plain:
            if type(value) is dict and len(value) == 1 and value.get("f") in _NONFINITE_IN:
                if markers is None:
                    markers = []
                markers.append(s)
            else:
                break
    else:
        if markers:
            for s in markers:
                s[2] = _NONFINITE_IN[s[2]["f"]]
        return raw_samples
    _check_samples_slow(raw_samples, contexts)
    raise AssertionError("unreachable: the slow check found no error")  # pragma: no cover


def _data_fields(obj: dict) -> dict[str, Any]:
    where = "data"
    seq = _get(obj, "seq", int, where)
    if seq < 1:
        raise _invalid("data.seq", "must be >= 1")
    contexts = _data_contexts(obj)
    rows = _check_samples(_get(obj, "samples", list, where), contexts)
    return dict(
        edge=_nonempty_str(obj, "edge", where),
        site=_nonempty_str(obj, "site", where),
        session=_nonempty_str(obj, "session", where),
        seq=seq,
        sent=_get(obj, "sent", int, where),
        rows=rows,
        contexts=contexts,
        historical=bool(_get(obj, "historical", bool, where, optional=True)),
    )


def _decode_data(obj: dict) -> DataMessage:
    f = _data_fields(obj)
    f["samples"] = tuple([Sample(*r) for r in f.pop("rows")])
    return DataMessage(**f)


@dataclass(frozen=True, slots=True)
class DataRows:
    """A data message decoded for bulk storage: the fields of :class:`DataMessage`, with the
    samples as validated rows ``[tag, ts, value, quality, ctx]`` instead of one
    :class:`Sample` object each. Values are as :func:`decode` gives them (non-finite
    markers already floats). ``samples`` builds the Sample objects on demand."""

    edge: str
    site: str
    session: str
    seq: int
    sent: int
    rows: list
    contexts: dict[str, BatchContext] = field(default_factory=dict)
    historical: bool = False
    kind: str = "data"

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple([Sample(*r) for r in self.rows])

    def to_message(self) -> DataMessage:
        return DataMessage(self.edge, self.site, self.session, self.seq, self.sent, self.samples,
                           self.contexts, self.historical)


def _opt_float(obj: dict, key: str, where: str) -> float | None:
    val = _get(obj, key, (int, float), where, optional=True)
    return None if val is None else float(val)


def _decode_birth(obj: dict) -> BirthMessage:
    where = "birth"
    tags = []
    for i, t in enumerate(_get(obj, "tags", list, where)):
        tw = f"birth.tags[{i}]"
        if not isinstance(t, dict):
            raise _invalid(tw, f"expected object, got {type(t).__name__}")
        datatype = _get(t, "datatype", str, tw, optional=True) or "float"
        if datatype not in DATA_TYPES:
            raise _invalid(f"{tw}.datatype", f"must be one of {', '.join(DATA_TYPES)}")
        tags.append(
            TagInfo(
                name=_nonempty_str(t, "name", tw),
                datatype=datatype,  # type: ignore[arg-type]
                unit=_get(t, "unit", str, tw, optional=True),
                description=_get(t, "description", str, tw, optional=True),
                source=_get(t, "source", str, tw, optional=True),
                low=_opt_float(t, "low", tw),
                high=_opt_float(t, "high", tw),
            )
        )
    return BirthMessage(
        edge=_nonempty_str(obj, "edge", where),
        site=_nonempty_str(obj, "site", where),
        session=_nonempty_str(obj, "session", where),
        sent=_get(obj, "sent", int, where),
        tags=tuple(tags),
    )


def _decode_state(obj: dict) -> StateMessage:
    where = "state"
    state = _get(obj, "state", str, where)
    if state not in ("online", "offline"):
        raise _invalid("state.state", "must be 'online' or 'offline'")
    return StateMessage(
        edge=_nonempty_str(obj, "edge", where),
        site=_nonempty_str(obj, "site", where),
        session=_nonempty_str(obj, "session", where),
        state=state,  # type: ignore[arg-type]
        sent=_get(obj, "sent", int, where),
    )


def _decode_ack(obj: dict) -> AckMessage:
    where = "ack"
    ranges = []
    for i, r in enumerate(_get(obj, "ranges", list, where)):
        if (
            type(r) is not list
            or len(r) != 2
            or type(r[0]) is not int
            or type(r[1]) is not int
            or not 1 <= r[0] <= r[1]
        ):
            raise _invalid(f"ack.ranges[{i}]", "expected [first, last] with 1 <= first <= last")
        ranges.append((r[0], r[1]))
    events = _get(obj, "events", list, where, optional=True) or []
    if not all(isinstance(e, str) and e for e in events):
        raise _invalid("ack.events", "must be a list of non-empty event ids")
    return AckMessage(
        edge=_nonempty_str(obj, "edge", where),
        session=_nonempty_str(obj, "session", where),
        ranges=tuple(ranges),
        sent=_get(obj, "sent", int, where),
        worker=_get(obj, "worker", str, where, optional=True),
        events=tuple(events),
    )


def _decode_event(obj: dict) -> EventMessage:
    where = "event"
    tags = _get(obj, "tags", list, where, optional=True) or []
    if not all(isinstance(t, str) for t in tags):
        raise _invalid("event.tags", "must be a list of strings")
    return EventMessage(
        edge=_nonempty_str(obj, "edge", where),
        site=_nonempty_str(obj, "site", where),
        id=_nonempty_str(obj, "id", where),
        type=_nonempty_str(obj, "type", where),
        ts=_get(obj, "ts", int, where),
        sent=_get(obj, "sent", int, where),
        start=_get(obj, "start", int, where, optional=True),
        end=_get(obj, "end", int, where, optional=True),
        tags=tuple(tags),
        detail=_get(obj, "detail", dict, where, optional=True) or {},
    )


_DECODERS = {
    "data": _decode_data,
    "birth": _decode_birth,
    "state": _decode_state,
    "ack": _decode_ack,
    "event": _decode_event,
}


def _parse(payload: bytes, max_bytes: int) -> tuple[dict, str]:
    if len(payload) > max_bytes:
        raise DecodeError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise DecodeError("not-json", f"not JSON: {err}") from err
    if not isinstance(obj, dict):
        raise DecodeError("invalid", f"message must be a JSON object, got {type(obj).__name__}")
    version = obj.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise DecodeError(
            "wrong-version", f"schema version {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _DECODERS:
        raise DecodeError("unknown-kind", f"unknown message kind {kind!r}")
    return obj, kind


def decode(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Message:
    """Parse and validate a wire message. Raises :class:`DecodeError`."""
    obj, kind = _parse(payload, max_bytes)
    return _DECODERS[kind](obj)


def decode_rows(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Message | DataRows:
    """Like :func:`decode` (same checks, same errors, same results for every other kind),
    but a data message comes back as :class:`DataRows`: validated in one pass over the
    samples, without a :class:`Sample` object per sample. For bulk consumers (ingest)."""
    obj, kind = _parse(payload, max_bytes)
    if kind == "data":
        return DataRows(**_data_fields(obj))
    return _DECODERS[kind](obj)
