"""End-to-end acknowledgements: which (edge, session) seqs and which event ids a commit
covered. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from edge.contract import AckMessage, EventMessage
from historian.store.rows import ack_ranges
from historian.store.writer import DataIn

#: the session named in an acknowledgement of events from an edge whose session the
#: historian does not know yet (the codec requires a non-empty session; an edge applies
#: event ids whatever the session says)
EVENTS_SESSION = "events"


def acks_for(committed: Iterable[DataIn], sent_us: int, worker: str | None,
             events: Iterable[EventMessage] = (),
             edge_sessions: Mapping[str, str] | None = None) -> list[tuple[str, AckMessage]]:
    """(site, AckMessage) per edge session for messages that are now in the database, both
    newly applied and found already committed (a re-delivery must be re-acknowledged).

    ``events`` (committed now or found stored) are acknowledged by id to their edge under
    the edge's current session from ``edge_sessions`` (else :data:`EVENTS_SESSION`): in
    the data ack of that session when there is one, else in an ack with no ranges."""
    seqs: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for d in committed:
        m = d.msg
        seqs[(m.site, m.edge, m.session)].append(m.seq)
    ids: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    sessions = edge_sessions or {}
    for ev in events:
        key = (ev.site, ev.edge, sessions.get(ev.edge) or EVENTS_SESSION)
        if ev.id not in ids[key]:
            ids[key].append(ev.id)
        seqs.setdefault(key, [])
    return [
        (site, AckMessage(edge, session, ack_ranges(s), sent_us, worker, tuple(ids.get((site, edge, session), ()))))
        for (site, edge, session), s in sorted(seqs.items())
    ]
