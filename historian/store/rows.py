"""Pure conversion of decoded data messages into ``batchwire.samples`` rows and the
bookkeeping that travels with them (ingest-log figures, batch/phase bounds, touched rollup
buckets). No I/O: the writer feeds the rows to COPY.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from edge.contract import BatchContext, DataMessage

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
_UINT32 = 1 << 32
_INT32_MAX = 0x7FFFFFFF
# datetime covers years 1..9999; PostgreSQL more, but a sample outside this is nonsense
MIN_TS_US = -62_135_596_800_000_000
MAX_TS_US = 253_402_300_799_999_999

# PostgreSQL's binary timestamptz counts µs from 2000-01-01 UTC
PG_EPOCH_OFFSET_US = 946_684_800_000_000
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
# One binary COPY tuple of (tag_id, ts, value, value_text, quality, context_id): a field
# count, then each field as (length, bytes) with length -1 for NULL. Packing a whole row in
# one struct call is several times cheaper than per-field adaptation.
_ROW_NUM_CTX = struct.Struct(">hiiiqidiiiii")  # value, context
_ROW_NUM = struct.Struct(">hiiiqidiiii")  # value, no context
_ROW_NULL_CTX = struct.Struct(">hiiiqiiiiii")  # no value (None or text handled apart), context
_ROW_NULL = struct.Struct(">hiiiqiiiii")
_HEAD = struct.Struct(">hiiiq")
_TAIL_CTX = struct.Struct(">iiii")
_TAIL = struct.Struct(">iii")


def pack_row(tag_id: int, ts_us: int, value: float | None, text: str | None, quality: int,
             context_id: int | None) -> bytes:
    """One binary COPY tuple (general form; message_rows inlines the common cases)."""
    out = [_HEAD.pack(6, 4, tag_id, 8, ts_us - PG_EPOCH_OFFSET_US)]
    out.append(struct.pack(">id", 8, value) if value is not None else b"\xff\xff\xff\xff")
    if text is not None:
        raw = text.encode()
        out.append(struct.pack(">i", len(raw)) + raw)
    else:
        out.append(b"\xff\xff\xff\xff")
    out.append(_TAIL_CTX.pack(4, quality, 4, context_id) if context_id is not None
               else _TAIL.pack(4, quality, -1))
    return b"".join(out)


def unpack_rows(data: bytes) -> list[tuple]:
    """Decode binary COPY tuples back to (tag_id, ts_us, value, value_text, quality,
    context_id) - for tests and diagnostics."""
    rows, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from(">h", data, i)
        i += 2
        fields = []
        for _ in range(n):
            (ln,) = struct.unpack_from(">i", data, i)
            i += 4
            fields.append(None if ln < 0 else data[i:i + ln])
            i += max(ln, 0)
        tag, ts, val, text, q, ctx = fields
        rows.append((
            struct.unpack(">i", tag)[0], struct.unpack(">q", ts)[0] + PG_EPOCH_OFFSET_US,
            None if val is None else struct.unpack(">d", val)[0],
            None if text is None else text.decode(), struct.unpack(">i", q)[0],
            None if ctx is None else struct.unpack(">i", ctx)[0],
        ))
    return rows


class RowError(ValueError):
    """A message whose samples cannot be stored (``reason`` names the quarantine reason)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def quality_to_int4(code: int) -> int:
    """uint32 StatusCode bit pattern -> signed int4 holding the same bits."""
    return code - _UINT32 if code > _INT32_MAX else code


def split_value(v) -> tuple[float | None, str | None]:
    """(value, value_text) for a sample value: numbers and booleans to float8, strings to
    text, None to both NULL. NaN and ±Inf stay as they are."""
    t = type(v)
    if t is float:
        return v, None
    if t is bool:
        return (1.0 if v else 0.0), None
    if t is int:
        return float(v), None
    if t is str:
        return None, v
    return None, None


@dataclass
class MessageRows:
    """What one data message contributes to a batch."""

    data: bytes  # binary COPY tuples, ready for COPY ... (FORMAT BINARY) between header and trailer
    count: int
    first_ts: int | None  # µs
    last_ts: int | None
    skewed: int
    undeclared: dict[str, int]  # tag name -> samples not applied
    # context key (as in the message) -> (min ts, max ts) µs of the samples carrying it
    context_bounds: dict[str, list[int]] = field(default_factory=dict)
    buckets: set[tuple[int, int]] = field(default_factory=set)  # (tag_id, minute µs)


def sample_rows(msg) -> list | tuple:
    """The samples of a data message as ``(tag, ts, value, quality, ctx)`` sequences: the
    validated rows of a :class:`~edge.contract.codec.DataRows` as they are, or built from
    the :class:`Sample` objects of a :class:`DataMessage`."""
    rows = getattr(msg, "rows", None)
    if rows is not None:
        return rows
    return [(s.tag, s.ts, s.value, s.quality, s.ctx) for s in msg.samples]


def sample_count(msg) -> int:
    rows = getattr(msg, "rows", None)
    return len(rows) if rows is not None else len(msg.samples)


def message_rows(
    msg: DataMessage,
    tag_ids: dict[str, int],
    context_ids: dict[str, int],
    received_us: int,
    skew_limit_us: int,
    *,
    with_buckets: bool,
    tuples: bool = True,
) -> MessageRows:
    """Binary COPY tuples for the declared samples of ``msg`` (a :class:`DataMessage` or
    :class:`~edge.contract.codec.DataRows`). ``context_ids`` maps the
    message's context keys to ``batchwire.contexts`` ids. Raises :class:`RowError` when the
    message cannot be stored at all (timestamps outside years 1..9999, NUL in text).
    ``tuples=False``: the caller packs the samples itself (plain backend); ``data`` may
    then be empty, every figure and check is the same."""
    fast = _message_rows_fast(msg, tag_ids, context_ids, received_us, skew_limit_us, with_buckets, tuples)
    if fast is not None:
        return fast
    parts: list[bytes] = []
    append = parts.append
    undeclared: dict[str, int] = {}
    bounds: dict[str, list[int]] = {}
    buckets: set[tuple[int, int]] = set()
    add_bucket = buckets.add
    lo_skew = received_us - skew_limit_us
    hi_skew = received_us + skew_limit_us
    first = last = None
    skewed = 0
    off = PG_EPOCH_OFFSET_US
    num_ctx, num, null_ctx, null = _ROW_NUM_CTX.pack, _ROW_NUM.pack, _ROW_NULL_CTX.pack, _ROW_NULL.pack
    get_tag = tag_ids.get
    for tag, ts, v, q, ctx in sample_rows(msg):
        tid = get_tag(tag)
        if tid is None:
            undeclared[tag] = undeclared.get(tag, 0) + 1
            continue
        if first is None:
            first = last = ts
        elif ts < first:
            first = ts
        elif ts > last:
            last = ts
        if ts < lo_skew or ts > hi_skew:
            skewed += 1
        if q > _INT32_MAX:
            q -= _UINT32
        if ctx is not None:
            b = bounds.get(ctx)
            if b is None:
                bounds[ctx] = [ts, ts]
            elif ts < b[0]:
                b[0] = ts
            elif ts > b[1]:
                b[1] = ts
            cid = context_ids[ctx]
        else:
            cid = None
        t = type(v)
        if t is float or t is int or t is bool:
            fv = float(v)
            if with_buckets:
                add_bucket((tid, ts - ts % MINUTE_US))
            if cid is None:
                append(num(6, 4, tid, 8, ts - off, 8, fv, -1, 4, q, -1))
            else:
                append(num_ctx(6, 4, tid, 8, ts - off, 8, fv, -1, 4, q, 4, cid))
        elif t is str:
            if "\x00" in v:
                raise RowError("invalid-value", f"sample of {tag!r} at {ts}: text contains NUL")
            append(pack_row(tid, ts, None, v, q, cid))
        elif cid is None:
            append(null(6, 4, tid, 8, ts - off, -1, -1, 4, q, -1))
        else:
            append(null_ctx(6, 4, tid, 8, ts - off, -1, -1, 4, q, 4, cid))
    if first is not None and (first < MIN_TS_US or last > MAX_TS_US):
        raise RowError("invalid-timestamp", f"sample timestamps {first}..{last} µs are outside years 1..9999")
    return MessageRows(b"".join(parts), len(parts), first, last, skewed, undeclared, bounds, buckets)


#: a message spanning at most this much time marks every (tag, minute) of its span for the
#: rollups instead of collecting buckets per sample (recomputing an empty bucket is a no-op)
FAST_BUCKET_SPAN_US = 10 * MINUTE_US


def _message_rows_fast(msg, tag_ids: dict[str, int], context_ids: dict[str, int], received_us: int,
                       skew_limit_us: int, with_buckets: bool, tuples: bool = True) -> MessageRows | None:
    """The common shape - every tag declared, one context (or none) for all samples - with
    the bookkeeping done by C-level builtins over whole columns instead of per sample.
    Returns None when the message has another shape (the general loop handles it). Rows
    and figures are identical to the general loop's; ``buckets`` may be a superset
    (minutes of the span without a numeric sample of the tag), which only costs the rollup
    maintainer a no-op recomputation."""
    rows = sample_rows(msg)
    if not rows:
        return None
    tags = {r[0] for r in rows}
    ctxs = {r[4] for r in rows}
    if len(ctxs) != 1 or not tags.issubset(tag_ids.keys()):
        return None
    (ctx,) = ctxs
    times = [r[1] for r in rows]
    first, last = min(times), max(times)
    if first < MIN_TS_US or last > MAX_TS_US:
        raise RowError("invalid-timestamp", f"sample timestamps {first}..{last} µs are outside years 1..9999")
    off = PG_EPOCH_OFFSET_US
    parts: list[bytes] = []
    append = parts.append
    get_tag = tag_ids.__getitem__
    if not tuples:
        for r in rows:
            v = r[2]
            if type(v) is str and "\x00" in v:
                raise RowError("invalid-value", f"sample of {r[0]!r} at {r[1]}: text contains NUL")
        bounds = {} if ctx is None else {ctx: [first, last]}
    elif ctx is None:
        cid = None
        num = _ROW_NUM.pack
        for tag, ts, v, q, _ in rows:
            if type(v) is float and q <= _INT32_MAX:
                append(num(6, 4, get_tag(tag), 8, ts - off, 8, v, -1, 4, q, -1))
            else:
                append(_general_row(tag, get_tag(tag), ts, v, q, None))
        bounds: dict[str, list[int]] = {}
    else:
        cid = context_ids[ctx]
        num_ctx = _ROW_NUM_CTX.pack
        for tag, ts, v, q, _ in rows:
            if type(v) is float and q <= _INT32_MAX:
                append(num_ctx(6, 4, get_tag(tag), 8, ts - off, 8, v, -1, 4, q, 4, cid))
            else:
                append(_general_row(tag, get_tag(tag), ts, v, q, cid))
        bounds = {ctx: [first, last]}
    lo_skew, hi_skew = received_us - skew_limit_us, received_us + skew_limit_us
    skewed = 0 if first >= lo_skew and last <= hi_skew else sum(
        1 for t in times if t < lo_skew or t > hi_skew)
    buckets: set[tuple[int, int]] = set()
    if with_buckets:
        if last - first <= FAST_BUCKET_SPAN_US:
            minutes = range(first - first % MINUTE_US, last + 1, MINUTE_US)
            buckets = {(tag_ids[t], m) for t in tags for m in minutes}
        else:
            numeric = (float, int, bool)
            buckets = {(tag_ids[r[0]], r[1] - r[1] % MINUTE_US) for r in rows if type(r[2]) in numeric}
    return MessageRows(b"".join(parts), len(rows), first, last, skewed, {}, bounds, buckets)


def _general_row(tag: str, tid: int, ts: int, v, q: int, cid: int | None) -> bytes:
    if q > _INT32_MAX:
        q -= _UINT32
    t = type(v)
    if t is float or t is int or t is bool:
        return pack_row(tid, ts, float(v), None, q, cid)
    if t is str:
        if "\x00" in v:
            raise RowError("invalid-value", f"sample of {tag!r} at {ts}: text contains NUL")
        return pack_row(tid, ts, None, v, q, cid)
    return pack_row(tid, ts, None, None, q, cid)


def merge_bounds(
    into: dict[tuple, list], key: tuple, lo: int, hi: int, recipe: str | None = None
) -> None:
    """Widen the [lo, hi] span recorded for ``key`` (batch or phase identity)."""
    b = into.get(key)
    if b is None:
        into[key] = [lo, hi, recipe]
    else:
        if lo < b[0]:
            b[0] = lo
        if hi > b[1]:
            b[1] = hi
        if recipe is not None:
            b[2] = recipe


def batch_and_phase_bounds(
    contexts: dict[str, BatchContext], bounds: dict[str, list[int]],
    batches: dict[tuple, list], phases: dict[tuple, list],
) -> None:
    """Fold a message's per-context sample spans into batch and phase spans."""
    for key, (lo, hi) in bounds.items():
        c = contexts[key]
        if c.batch is None:
            continue
        merge_bounds(batches, (c.site, c.unit, c.batch), lo, hi, c.recipe)
        if c.phase is not None:
            merge_bounds(phases, (c.site, c.unit, c.batch, c.phase), lo, hi)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def ack_ranges(seqs) -> tuple[tuple[int, int], ...]:
    """Sorted, merged inclusive ranges covering the given sequence numbers."""
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return tuple((a, b) for a, b in out)
