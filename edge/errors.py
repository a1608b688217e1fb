"""Errors the edge agent raises. Third-party exceptions are translated into these at the
boundary (``raise X(...) from err``) so callers handle one family of errors."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of every edge agent error."""


class OutboxError(EdgeError):
    """The durable outbox could not be opened, read or written."""


class PublishError(EdgeError):
    """The MQTT broker could not be reached or refused a request."""


class ConnectionLost(PublishError):
    """The MQTT connection went away; pending publishes did not complete."""


class SourceError(EdgeError):
    """An acquisition source (OPC UA, Modbus) failed; the source reconnects on its own."""
