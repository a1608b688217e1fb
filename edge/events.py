"""Which edge events (data gaps, ...) to send next, and which the historian still owes an
acknowledgement for. Pure: the caller passes the clock and does the I/O.

Events are kept in the outbox until an :class:`~edge.contract.AckMessage` lists their id
(the historian committed them), exactly like data: the broker's PUBACK is not a database
commit. Every event is in one state:

``pending``
    to be published (found at start-up, newly stored, not confirmed by the broker before a
    disconnect, or unacknowledged for ``ack_timeout`` after it was sent);
``sent``
    published, waiting for the historian's acknowledgement.

Events are few (one per drop, not per sample), so their payloads stay in memory. Re-sending
is harmless: an event id is recorded once by the historian.
"""

from __future__ import annotations

from collections.abc import Iterable


class EventDelivery:
    def __init__(self, ack_timeout: float):
        if ack_timeout <= 0:
            raise ValueError("ack_timeout must be > 0")
        self.ack_timeout = ack_timeout
        self._pending: dict[str, bytes] = {}  # insertion order = sending order
        self._sent: dict[str, tuple[bytes, float, bool]] = {}  # id -> (payload, sent at, PUBACKed)
        self.resent = 0

    def __len__(self) -> int:
        """Events not yet acknowledged by the historian."""
        return len(self._pending) + len(self._sent)

    def has_work(self) -> bool:
        return bool(self._pending)

    def stored(self, event_id: str, payload: bytes) -> None:
        """An event is in the outbox and must reach the historian (idempotent)."""
        if event_id not in self._sent:
            self._pending.setdefault(event_id, payload)

    def next(self) -> tuple[str, bytes] | None:
        """Take the next event to publish; call :meth:`mark_sent` or :meth:`publish_failed`."""
        if not self._pending:
            return None
        event_id = next(iter(self._pending))
        return event_id, self._pending.pop(event_id)

    def mark_sent(self, event_id: str, payload: bytes, now: float) -> None:
        self._sent[event_id] = (payload, now, False)

    def puback(self, event_id: str) -> None:
        if event_id in self._sent:
            payload, t, _ = self._sent[event_id]
            self._sent[event_id] = (payload, t, True)

    def publish_failed(self, event_id: str) -> None:
        entry = self._sent.pop(event_id, None)
        if entry is not None:
            self._pending[event_id] = entry[0]

    def acknowledged(self, ids: Iterable[str]) -> list[str]:
        """The historian committed these; returns the ids this removed (unknown ids are
        harmless: a repeated acknowledgement or one from before a restart)."""
        removed = []
        for event_id in ids:
            found = self._pending.pop(event_id, None) is not None
            found = self._sent.pop(event_id, None) is not None or found
            if found:
                removed.append(event_id)
        return removed

    def expire(self, now: float) -> int:
        """Events unacknowledged for ``ack_timeout`` go back to pending (sent again)."""
        cutoff = now - self.ack_timeout
        late = [i for i, (_, t, _) in self._sent.items() if t <= cutoff]
        for event_id in late:
            self._pending[event_id] = self._sent.pop(event_id)[0]
        self.resent += len(late)
        return len(late)

    def next_expiry(self) -> float | None:
        if not self._sent:
            return None
        return min(t for _, t, _ in self._sent.values()) + self.ack_timeout

    def on_disconnect(self) -> None:
        """Publishes the broker never confirmed are sent again on the next connection;
        confirmed ones keep waiting for the historian's acknowledgement."""
        lost = [i for i, (_, _, confirmed) in self._sent.items() if not confirmed]
        for event_id in lost:
            self._pending[event_id] = self._sent.pop(event_id)[0]
        self.resent += len(lost)
