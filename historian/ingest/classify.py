"""Turn one received MQTT message into something the writer can apply, or a quarantine
record. Pure: no I/O; never raises for bad input."""

from __future__ import annotations

from edge.contract import (
    MAX_PAYLOAD_BYTES, BirthMessage, DataMessage, DecodeError, EventMessage, StateMessage,
    TopicError, parse,
)
from edge.contract.codec import DataRows, decode_rows
from historian.store.rows import sample_count as _count
from historian.store.writer import DataIn, Quarantined

Item = DataIn | BirthMessage | EventMessage | StateMessage | Quarantined


def classify(topic: str, payload: bytes, received_us: int, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Item:
    """Decode ``payload`` received on ``topic``. Anything that is not a well-formed v1
    message of the kind its topic names, from the site and edge its topic names, becomes a
    :class:`Quarantined` with the reason (``oversized``, ``not-json``, ``wrong-version``,
    ``unknown-kind``, ``invalid``, ``bad-topic``, ``topic-mismatch``)."""
    try:
        where = parse(topic)
    except TopicError as err:
        return Quarantined(topic, "bad-topic", str(err), payload, received_us)
    try:
        msg = decode_rows(payload, max_bytes=max_bytes)
    except DecodeError as err:
        return Quarantined(topic, err.reason, str(err), payload, received_us, where.edge)
    except Exception as err:  # noqa: BLE001 - a codec bug must not stop ingest either
        return Quarantined(topic, "invalid", f"decoder failed: {err!r}", payload, received_us, where.edge)
    if msg.kind != where.kind:
        return Quarantined(topic, "topic-mismatch", f"a {msg.kind} message on a {where.kind} topic",
                           payload, received_us, where.edge)
    site = getattr(msg, "site", where.site)
    if msg.edge != where.edge or site != where.site:
        return Quarantined(topic, "topic-mismatch",
                           f"message from {site}/{msg.edge} on the topic of {where.site}/{where.edge}",
                           payload, received_us, where.edge)
    if isinstance(msg, (DataRows, DataMessage)):
        return DataIn(msg, received_us, topic, payload)
    if isinstance(msg, (BirthMessage, EventMessage, StateMessage)):
        return msg
    return Quarantined(topic, "unknown-kind", f"the historian does not consume {msg.kind} messages",
                       payload, received_us, where.edge)


def sample_count(item: Item) -> int:
    return _count(item.msg) if isinstance(item, DataIn) else 0
