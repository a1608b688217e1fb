"""Tag ownership changes made by an operator (``batchwire db tags reassign``).

A tag belongs to the edge whose birth declared it first; ingest refuses data and birth
entries for it from any other edge (quarantine reason ``tag-owned-by-other-edge``). When a
tag really moves - equipment re-cabled to another gateway, a gateway replaced under a new
id - an operator reassigns it. The change is an attributed record in ``tag_history`` (new
owner, reason, who), so the audit trail shows when samples of the tag began to come from
the new edge. Running ingest workers notice within their tag cache lifetime (60 s by
default), at once for the new owner's data and at the old owner's next birth.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


class TagError(ValueError):
    """A tag operation that cannot be done as asked (unknown tag, empty reason ...)."""


@dataclass(frozen=True)
class Reassignment:
    tag: str
    tag_id: int
    old_edge: str | None
    new_edge: str
    site: str | None


def reassign_tag(conn: psycopg.Connection, tag: str, edge: str, *, reason: str, changed_by: str,
                 site: str | None = None) -> Reassignment:
    """Make ``edge`` the owner of ``tag`` (and ``site`` its site, when given) and record
    it in ``tag_history`` with ``reason`` and ``changed_by``, in one transaction. The
    metadata stays as last declared until the new owner's next birth. Raises
    :class:`TagError` for an unknown tag or an empty reason/edge/changed_by."""
    for value, what in ((edge, "--edge"), (reason, "--reason"), (changed_by, "--by")):
        if not value or not value.strip():
            raise TagError(f"{what} must not be empty")
    with conn.transaction():
        row = conn.execute("SELECT tag_id, edge FROM batchwire.tags WHERE name = %s FOR UPDATE",
                           (tag,)).fetchone()
        if row is None:
            raise TagError(f"no tag named {tag!r}")
        tag_id, old = row
        changed = conn.execute(
            "UPDATE batchwire.tags SET edge = %s, site = coalesce(%s, site), updated_at = now() "
            "WHERE tag_id = %s RETURNING site, datatype, unit, description, source, low, high",
            (edge, site, tag_id)).fetchone()
        new_site = changed[0]
        conn.execute(
            "INSERT INTO batchwire.tag_history (tag_id, valid_from, datatype, unit, description, source, "
            "low, high, site, edge, session, reason, changed_by) "
            "VALUES (%s, clock_timestamp(), %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, %s)",
            (tag_id, *changed[1:], new_site, edge, reason, changed_by))
    return Reassignment(tag, tag_id, old, edge, new_site)
