"""Packing of samples into ``batchwire.samples_packed`` rows (plain backend).

The writer hands every newly claimed data message of a batch to a :class:`Packer`, which
groups the declared samples by (tag, UTC hour) and emits one binary COPY tuple per group:
``(tag_id, n, ts_min, ts_max, context_id, ts[], value[], value_text[], quality[],
context_ids[])`` as described in ``0005_packed_samples.plain.sql``. The packer is pure;
:func:`repack` (merging small rows later) is the one database call here.

Arrays are written in PostgreSQL's binary array format (ndim, has-null flag, element type
oid, length, lower bound, then a length word before every element). The common group -
every value a number, every quality Good, one context - is packed with one ``struct``
call per array.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import psycopg

from .rows import HOUR_US, PG_EPOCH_OFFSET_US, RowError

_UINT32 = 1 << 32
_INT32_MAX = 0x7FFFFFFF
_OID_INT4, _OID_TEXT, _OID_FLOAT8, _OID_TIMESTAMPTZ = 23, 25, 701, 1184

COPY_PACKED_SQL = (
    "COPY batchwire.samples_packed (tag_id, n, ts_min, ts_max, context_id, ts, value, value_text, "
    "quality, context_ids) FROM STDIN (FORMAT BINARY)"
)
_NULL = b"\xff\xff\xff\xff"
_HEAD = struct.Struct(">hiiiiiqiq")  # 10 fields; tag_id, n, ts_min, ts_max
_I4 = struct.Struct(">ii")
_ARRAY_HEAD = struct.Struct(">iiiiii")  # field length, ndim, has_null, oid, dim, lbound


def _array(oid: int, n: int, body: bytes, has_null: int = 0) -> bytes:
    """A COPY field holding a one-dimensional array of ``n`` elements."""
    return _ARRAY_HEAD.pack(20 + len(body), 1, has_null, oid, n, 1) + body


def _fixed_body(code: str, size: int, values: list) -> bytes:
    """Elements without NULLs: a length word ``size`` before each value, in one call."""
    n = len(values)
    args = [size] * (2 * n)
    args[1::2] = values
    return struct.pack(">" + ("i" + code) * n, *args)


class Packer:
    """Collects samples of newly claimed messages; :meth:`copy_data` gives the COPY tuples."""

    __slots__ = ("_groups", "rows", "samples")

    def __init__(self) -> None:
        # (tag_id, hour) -> [ts list, value list, quality list, context id list]
        self._groups: dict[tuple[int, int], tuple[list, list, list, list]] = {}
        self.samples = 0

    def add(self, rows: Iterable, tag_ids: dict[str, int], context_ids: dict[str, int]) -> None:
        """Add the samples ``(tag, ts µs, value, quality uint32, ctx key)`` of one message;
        samples of tags not in ``tag_ids`` are skipped (the writer quarantines them)."""
        groups = self._groups
        get_tag = tag_ids.get
        n = 0
        for tag, ts, v, q, ctx in rows:
            tid = get_tag(tag)
            if tid is None:
                continue
            key = (tid, ts // HOUR_US)
            g = groups.get(key)
            if g is None:
                g = groups[key] = ([], [], [], [])
            g[0].append(ts)
            g[1].append(v)
            g[2].append(q)
            g[3].append(None if ctx is None else context_ids[ctx])
            n += 1
        self.samples += n

    def __len__(self) -> int:
        return len(self._groups)

    def copy_data(self) -> bytes:
        """Binary COPY tuples (no header/trailer), one per (tag, hour) group."""
        out = []
        append = out.append
        off = PG_EPOCH_OFFSET_US
        for (tid, _), (ts, vs, qs, cs) in self._groups.items():
            n = len(ts)
            lo, hi = min(ts), max(ts)
            append(_HEAD.pack(10, 4, tid, 4, n, 8, lo - off, 8, hi - off))
            c0 = cs[0]
            uniform_ctx = cs.count(c0) == n
            append(_NULL if c0 is None or not uniform_ctx else _I4.pack(4, c0))
            append(_array(_OID_TIMESTAMPTZ, n, _fixed_body("q", 8, [t - off for t in ts])))
            append(_values(vs))
            append(_quality(qs))
            append(_NULL if uniform_ctx else _ints(cs))
        return b"".join(out)


def _values(vs: list) -> bytes:
    """The value and value_text fields."""
    try:  # struct takes floats, ints and bools (as 1.0/0.0) alike
        return _array(_OID_FLOAT8, len(vs), _fixed_body("d", 8, vs)) + _NULL
    except (struct.error, OverflowError):  # a string or None among the values (or a huge int)
        pass
    fbody, tbody = [], []
    has_null_f = has_text = False
    for v in vs:
        t = type(v)
        if t is float or t is int or t is bool:
            fbody.append(struct.pack(">id", 8, float(v)))
            tbody.append(_NULL)
        elif t is str:
            if "\x00" in v:
                raise RowError("invalid-value", "sample text contains NUL")
            raw = v.encode()
            fbody.append(_NULL)
            tbody.append(struct.pack(">i", len(raw)) + raw)
            has_null_f = has_text = True
        else:
            fbody.append(_NULL)
            tbody.append(_NULL)
            has_null_f = True
    n = len(vs)
    if len(fbody) == fbody.count(_NULL):
        value = _NULL
    else:
        value = _array(_OID_FLOAT8, n, b"".join(fbody), int(has_null_f))
    text = _array(_OID_TEXT, n, b"".join(tbody), 1) if has_text else _NULL
    return value + text


def _quality(qs: list) -> bytes:
    if not any(qs):
        return _NULL
    return _array(_OID_INT4, len(qs), _fixed_body("i", 4, [q - _UINT32 if q > _INT32_MAX else q for q in qs]))


def _ints(cs: list) -> bytes:
    if None not in cs:
        return _array(_OID_INT4, len(cs), _fixed_body("i", 4, cs))
    body = b"".join(_NULL if c is None else _I4.pack(4, c) for c in cs)
    return _array(_OID_INT4, len(cs), body, 1)


#: pg_try_advisory_xact_lock key: "batchwire repack"; one worker at a time merges rows
REPACK_LOCK_KEY = 0x62775F7265706B
#: packed rows with fewer samples than this are merged per (tag, hour) ...
REPACK_SMALL = 64
#: ... once their hour ended this long ago (late data for it is unlikely by then, and
#: would only make a new small row, merged at the next pass)
REPACK_AFTER_US = 3_600_000_000 + 300_000_000


def repack(conn: psycopg.Connection, *, small: int = REPACK_SMALL, settle_us: int = REPACK_AFTER_US) -> int | None:
    """Merge packed rows of fewer than ``small`` samples, per (tag, hour), whose newest sample
    is older than ``settle_us`` before now. Returns the rows written, or None when another
    worker is at it. Commits. The samples are the same before and after (one statement)."""
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (REPACK_LOCK_KEY,)).fetchone()[0]:
            return None
        return conn.execute(
            "SELECT batchwire.repack_samples(now() - %s * INTERVAL '1 microsecond', %s)",
            (settle_us, small)).fetchone()[0]
