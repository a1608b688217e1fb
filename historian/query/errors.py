"""Errors of the query layer; the HTTP layer maps each to one status code."""

from __future__ import annotations


class QueryError(Exception):
    """Base class of every error the query layer raises on purpose."""


class BadParameter(QueryError):
    """A request parameter is malformed or out of range (HTTP 422).

    ``parameter`` names the offending parameter; the message says what is wrong with it.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class ConflictingParameters(BadParameter):
    """Parameters are each valid but contradict each other, e.g. start after end (HTTP 400)."""


class NotFound(QueryError):
    """The named resource does not exist (HTTP 404)."""


class Ambiguous(QueryError):
    """A name matches several resources; the message says how to disambiguate (HTTP 409)."""


class DatabaseUnavailable(QueryError):
    """The database cannot be reached or has no batchwire schema (HTTP 503)."""
