"""End-to-end acknowledgements: which (edge, session) seqs a commit covered. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from edge.contract import AckMessage
from historian.store.rows import ack_ranges
from historian.store.writer import DataIn


def acks_for(committed: Iterable[DataIn], sent_us: int, worker: str | None) -> list[tuple[str, AckMessage]]:
    """(site, AckMessage) per edge session for messages that are now in the database, both
    newly applied and found already committed (a re-delivery must be re-acknowledged)."""
    seqs: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for d in committed:
        m = d.msg
        seqs[(m.site, m.edge, m.session)].append(m.seq)
    return [
        (site, AckMessage(edge, session, ack_ranges(s), sent_us, worker))
        for (site, edge, session), s in sorted(seqs.items())
    ]
