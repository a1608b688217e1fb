"""MQTT topic layout of the wire contract, version 1.

    {prefix}/v1/{site}/{edge}/data     edge -> historian   DataMessage     QoS 1
    {prefix}/v1/{site}/{edge}/birth    edge -> historian   BirthMessage    QoS 1, retained
    {prefix}/v1/{site}/{edge}/state    edge -> anyone      StateMessage    QoS 1, retained, last will
    {prefix}/v1/{site}/{edge}/event    edge -> historian   EventMessage    QoS 1
    {prefix}/v1/{site}/{edge}/ack      historian -> edge   AckMessage      QoS 1

``prefix`` defaults to ``batchwire``; a deployment (or a test) may choose another to share
a broker. Site and edge ids are single topic levels: they may not contain ``/``, ``+``,
``#`` or NUL, and may not start with ``$``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "batchwire"
VERSION_LEVEL = "v1"
KINDS = ("data", "birth", "state", "event", "ack")
#: Kinds the historian consumes (everything but its own acknowledgements).
INGEST_KINDS = ("data", "birth", "state", "event")


class TopicError(ValueError):
    pass


def check_level(name: str, what: str) -> str:
    """Validate an id used as a topic level; return it unchanged."""
    if not name:
        raise TopicError(f"{what} must not be empty")
    bad = [c for c in "/+#\x00" if c in name]
    if bad or name.startswith("$"):
        raise TopicError(f"{what} {name!r} may not contain '/', '+', '#', NUL or start with '$'")
    return name


def topic(kind: str, site: str, edge: str, prefix: str = DEFAULT_PREFIX) -> str:
    if kind not in KINDS:
        raise TopicError(f"unknown message kind {kind!r}")
    return f"{prefix}/{VERSION_LEVEL}/{check_level(site, 'site')}/{check_level(edge, 'edge')}/{kind}"


def ingest_filter(kind: str, prefix: str = DEFAULT_PREFIX, share_group: str | None = None) -> str:
    """Subscription filter for one kind from every site and edge; with ``share_group`` an
    MQTT shared subscription so several historian workers split the load."""
    f = f"{prefix}/{VERSION_LEVEL}/+/+/{kind}"
    return f"$share/{share_group}/{f}" if share_group else f


@dataclass(frozen=True, slots=True)
class TopicName:
    prefix: str
    site: str
    edge: str
    kind: str


def parse(name: str) -> TopicName:
    """Split a concrete topic into its parts; raises :class:`TopicError` if it is not ours."""
    parts = name.split("/")
    if len(parts) < 5 or parts[-4] != VERSION_LEVEL or parts[-1] not in KINDS:
        raise TopicError(f"not a batchwire v1 topic: {name!r}")
    return TopicName("/".join(parts[:-4]), parts[-3], parts[-2], parts[-1])
