"""Hypothesis strategies for payloads ingest must put in quarantine, never apply, never
crash on.

Every payload drawn here is *bad by construction* (the historian has no choice but to
quarantine it): bytes that are not a JSON object, wrong schema versions, unknown kinds,
data messages with a field of the wrong type or missing, samples of the wrong shape,
numbers out of range, text PostgreSQL refuses (NUL), messages whose topic names another
edge, and well-formed data for tags no birth declared. What a hostile *authenticated*
publisher could do with a well-formed message for declared tags is not a payload problem
(the broker's ACLs are the defence) and is not generated.

:func:`hostile` yields ``(edge, payload)``: publish ``payload`` on the data topic of
``edge`` (an edge id that is never the real one).
"""

from __future__ import annotations

import itertools
import json

from hypothesis import strategies as st

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                          st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
_json = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)

_ids = itertools.count(1)
_EDGE = st.sampled_from(["hostile-a", "hostile-b"])
_SITE = "site-f"  # the real edge's site: the topic levels look legitimate


def _base(edge: str, seq: int) -> dict:
    return {"v": 1, "kind": "data", "edge": edge, "site": _SITE, "session": "hostile-session",
            "seq": seq, "sent": 1_700_000_000_000_000, "historical": False, "contexts": {},
            "samples": [["hostile.tag", 1_700_000_000_000_000, 1.0, 0, None]]}


def _dump(obj) -> bytes:
    # the standard library, not orjson: it writes integers beyond 64 bits and lone surrogates
    return json.dumps(obj).encode()


@st.composite
def _not_an_object(draw) -> bytes:
    raw = draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                         _json.filter(lambda v: not isinstance(v, dict)).map(_dump)))
    return raw


@st.composite
def _wrong_version(draw, edge: str) -> bytes:
    msg = _base(edge, next(_ids))
    msg["v"] = draw(st.one_of(st.integers().filter(lambda v: v != 1), st.text(max_size=5), st.none(),
                              st.floats(allow_nan=False).filter(lambda v: v != 1)))
    return _dump(msg)


@st.composite
def _unknown_kind(draw, edge: str) -> bytes:
    msg = _base(edge, next(_ids))
    msg["kind"] = draw(st.text(max_size=12).filter(
        lambda k: k not in ("data", "birth", "state", "event", "ack")))
    return _dump(msg)


_BAD_FIELD = {
    "edge": st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)),
    "session": st.one_of(st.integers(), st.none(), st.just("")),
    "seq": st.one_of(st.integers(max_value=0), st.text(max_size=5), st.none(),
                     st.floats(allow_nan=False), st.integers(min_value=2**64)),
    "sent": st.one_of(st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
    "samples": st.one_of(st.text(max_size=5), st.integers(), st.none(),
                         st.lists(st.lists(_json_scalars, max_size=3), min_size=1, max_size=3),
                         st.lists(st.lists(_json_scalars, min_size=6, max_size=8), min_size=1, max_size=3)),
    "contexts": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2)),
}


@st.composite
def _bad_field(draw, edge: str) -> bytes:
    msg = _base(edge, next(_ids))
    field = draw(st.sampled_from(sorted(_BAD_FIELD)))
    if draw(st.booleans()):
        del msg[field]
    else:
        msg[field] = draw(_BAD_FIELD[field])
    return _dump(msg)


@st.composite
def _bad_sample(draw, edge: str) -> bytes:
    """A data message whose samples have the right arity but a wrong member."""
    msg = _base(edge, next(_ids))
    tag, ts, value, quality, ctx = msg["samples"][0]
    which = draw(st.sampled_from(["tag", "ts", "quality", "ctx", "value"]))
    if which == "tag":
        tag = draw(st.one_of(st.integers(), st.none(), st.just("")))
    elif which == "ts":
        ts = draw(st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.none()))
    elif which == "quality":
        quality = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.text(max_size=3)))
    elif which == "ctx":
        ctx = draw(st.text(min_size=1, max_size=5))  # a key the message's contexts lack
    else:
        value = draw(st.one_of(st.lists(st.integers(), max_size=2),
                               st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
                               .filter(lambda d: set(d) != {"f"})))
    msg["samples"] = [[tag, ts, value, quality, ctx]]
    return _dump(msg)


@st.composite
def _undeclared(draw, edge: str) -> bytes:
    """Well formed, but its tags were never declared (some names carry NUL, which
    PostgreSQL text refuses, or are very long); timestamps may be out of range."""
    msg = _base(edge, next(_ids))
    msg["session"] = f"hostile-{next(_ids)}"  # unique: a re-used key would be a re-delivery
    n = draw(st.integers(1, 20))
    names = draw(st.lists(st.text(min_size=1, max_size=40), min_size=n, max_size=n))
    ts = draw(st.one_of(st.just(1_700_000_000_000_000), st.integers(-2**62, 2**62)))
    msg["samples"] = [["hostile." + name, ts + i, float(i), 0, None] for i, name in enumerate(names)]
    return _dump(msg)


@st.composite
def hostile(draw) -> tuple[str, bytes, str]:
    """(edge of the topic, payload, family)."""
    edge = draw(_EDGE)
    family = draw(st.sampled_from(["not-object", "version", "kind", "field", "sample", "undeclared",
                                   "topic-mismatch"]))
    if family == "not-object":
        return edge, draw(_not_an_object()), family
    if family == "version":
        return edge, draw(_wrong_version(edge)), family
    if family == "kind":
        return edge, draw(_unknown_kind(edge)), family
    if family == "field":
        return edge, draw(_bad_field(edge)), family
    if family == "sample":
        return edge, draw(_bad_sample(edge)), family
    if family == "undeclared":
        return edge, draw(_undeclared(edge)), family
    # a well-formed message from one hostile edge published on the topic of another
    other = "hostile-b" if edge == "hostile-a" else "hostile-a"
    return other, draw(_undeclared(edge)), family


def fixed_cases(max_payload: int) -> list[tuple[str, bytes, str]]:
    """Cases too large or too specific to leave to chance."""
    big = b'{"v":1,"kind":"data","pad":"' + b"x" * (max_payload + 1) + b'"}'
    birth_on_data = _dump({"v": 1, "kind": "birth", "edge": "hostile-a", "site": _SITE, "session": "s",
                           "sent": 1, "tags": [{"name": "hostile.birth", "datatype": "float"}]})
    return [("hostile-a", big, "oversized"), ("hostile-a", birth_on_data, "topic-mismatch"),
            ("hostile-a", b"", "not-object"), ("hostile-a", b"\x00" * 64, "not-object"),
            ("hostile-a", b'{"v":1,"kind":"data"' * 1000, "not-object")]
