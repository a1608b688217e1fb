"""Tag groups: named sets of tags (by pattern and/or explicit names) with a raw retention
and a TimescaleDB compress-after. The rules a tag's group follows are in
``0006_tag_groups.sql``; the job that applies them is :mod:`historian.store.retention`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from .backend import Backend, installed_backend
from .errors import StoreError
from .retention import MIN_TIMESCALE_RETENTION

#: "leave this setting as it is" (distinct from None, which clears it)
UNCHANGED = object()


class GroupError(StoreError):
    """A tag-group change that cannot be made (the message names the setting)."""


@dataclass
class TagGroup:
    name: str
    pattern: str | None
    raw_retention: timedelta | None  # None: keep forever
    compress_after: timedelta | None  # None: the store default
    members: list[str] = field(default_factory=list)  # explicit tag names
    tags: int = 0  # tags whose group this is now


def list_groups(conn: psycopg.Connection) -> list[TagGroup]:
    rows = conn.execute(
        "SELECT g.name, g.pattern, g.raw_retention, g.compress_after, "
        "  coalesce((SELECT array_agg(m.tag_name ORDER BY m.tag_name) FROM batchwire.tag_group_members m "
        "            WHERE m.group_name = g.name), '{}'), "
        "  (SELECT count(*) FROM batchwire.tag_group_of o WHERE o.group_name = g.name) "
        "FROM batchwire.tag_groups g ORDER BY g.name").fetchall()
    return [TagGroup(n, p, r, c, list(m), int(t)) for n, p, r, c, m, t in rows]


def set_group(conn: psycopg.Connection, name: str, *, pattern=UNCHANGED, raw_retention=UNCHANGED,
              compress_after=UNCHANGED, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> TagGroup:
    """Create group ``name`` or change the given settings (others stay). Commits.
    Raises :class:`GroupError` for an empty name or pattern, a non-positive interval, or on
    TimescaleDB a retention not above the continuous aggregates' refresh window."""
    if not name:
        raise GroupError("tag group name must not be empty")
    if pattern is not UNCHANGED and pattern is not None and not pattern:
        raise GroupError("pattern must not be empty (use no pattern for members only)")
    for setting, value in (("raw_retention", raw_retention), ("compress_after", compress_after)):
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise GroupError(f"{setting} must be positive, got {value}")
    if isinstance(raw_retention, timedelta) and installed_backend(conn) is Backend.TIMESCALEDB \
            and raw_retention < MIN_TIMESCALE_RETENTION:
        raise GroupError(f"raw_retention {raw_retention.days} days is below {MIN_TIMESCALE_RETENTION.days} days: on "
                         "TimescaleDB the continuous aggregates refresh the last 7 days from raw samples")
    with conn.transaction():
        conn.execute("INSERT INTO batchwire.tag_groups (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
        for column, value in (("pattern", pattern), ("raw_retention", raw_retention),
                              ("compress_after", compress_after)):
            if value is not UNCHANGED:
                conn.execute(f"UPDATE batchwire.tag_groups SET {column} = %s, updated_at = now() WHERE name = %s",
                             (value, name))
        if add:
            conn.execute("INSERT INTO batchwire.tag_group_members (group_name, tag_name) "
                         "SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING", (name, list(add)))
        if remove:
            conn.execute("DELETE FROM batchwire.tag_group_members WHERE group_name = %s AND tag_name = ANY(%s)",
                         (name, list(remove)))
    return next(g for g in list_groups(conn) if g.name == name)


def delete_group(conn: psycopg.Connection, name: str) -> bool:
    """Delete the group (its tags fall back to other groups or the default). Commits."""
    with conn.transaction():
        return conn.execute("DELETE FROM batchwire.tag_groups WHERE name = %s", (name,)).rowcount > 0
