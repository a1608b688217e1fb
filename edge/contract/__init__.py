"""The batchwire wire contract: topics, message types and their codec.

The edge publishes it; the historian imports it. Nothing here does I/O.
"""

from .codec import MAX_PAYLOAD_BYTES, DecodeError, decode, encode
from .messages import (
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
    from_micros,
    now_micros,
    to_micros,
)
from .topics import DEFAULT_PREFIX, TopicError, TopicName, ingest_filter, parse, topic

__all__ = [
    "MAX_PAYLOAD_BYTES", "DecodeError", "decode", "encode", "SCHEMA_VERSION", "AckMessage",
    "BatchContext", "BirthMessage", "DataMessage", "EventMessage", "Message", "Sample",
    "StateMessage", "TagInfo", "from_micros", "now_micros", "to_micros", "DEFAULT_PREFIX",
    "TopicError", "TopicName", "ingest_filter", "parse", "topic",
]
