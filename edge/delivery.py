"""Which stored message to send next, and what is still owed. Pure: the caller passes the
clock and does the I/O.

Every unacknowledged message of the outbox is in exactly one state:

``live``
    committed while connected and not yet sent; its payload is in memory.
``backlog``
    must be (re)sent and is read from the outbox when its turn comes: messages found at
    start-up, committed while disconnected, not confirmed by the broker before a
    disconnect, or sent but not acknowledged by the historian within ``ack_timeout``.
    Backlog messages go out oldest first and are marked historical.
``sent``
    published; waiting for the historian's acknowledgement (and the broker's PUBACK).
``held``
    not to be published yet: it carries tags whose metadata the historian has not been
    told (no birth declared them yet, or their metadata changed since the last birth).
    :meth:`release_held` (after a birth) makes them backlog again.

When both live and backlog messages wait, they alternate, so a long replay neither starves
live values nor is starved by them. A historian acknowledgement or an outbox drop removes a
message from whatever state it is in; an acknowledgement for a message already gone is
harmless.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The next message to publish. ``payload`` is None for backlog messages (load it from
    the outbox); ``historical`` says to mark it so."""

    seq: int
    payload: bytes | None
    historical: bool


class Delivery:
    def __init__(self, ack_timeout: float):
        if ack_timeout <= 0:
            raise ValueError("ack_timeout must be > 0")
        self.ack_timeout = ack_timeout
        self.connected = False
        self._live: dict[int, bytes] = {}  # insertion order = seq order
        self._backlog: set[int] = set()
        self._heap: list[int] = []  # backlog seqs, may hold stale entries (lazy deletion)
        self._sent: dict[int, tuple[float, bool]] = {}  # seq -> (sent at, broker PUBACKed)
        self._held: set[int] = set()
        self._live_turn = True
        self.resent = 0  # messages sent again after a timeout or a disconnect

    # ------------------------------------------------------------------ sizes

    @property
    def live(self) -> int:
        return len(self._live)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    @property
    def in_flight(self) -> int:
        return len(self._sent)

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def unacknowledged(self) -> int:
        return len(self._live) + len(self._backlog) + len(self._sent) + len(self._held)

    def has_work(self) -> bool:
        return bool(self._live or self._backlog)

    # ------------------------------------------------------------------ inputs

    def restore(self, seqs: Iterable[int]) -> None:
        """Messages found in the outbox at start-up: all owed, none known to be delivered."""
        for s in seqs:
            self._to_backlog(s)

    def committed(self, seq: int, payload: bytes) -> None:
        """A message was committed to the outbox."""
        if self.connected:
            self._live[seq] = payload
        else:
            self._to_backlog(seq)

    def mark_sent(self, seq: int, now: float) -> None:
        self._sent[seq] = (now, False)

    def puback(self, seq: int) -> None:
        """The broker accepted the publish (not yet the historian)."""
        if seq in self._sent:
            t, _ = self._sent[seq]
            self._sent[seq] = (t, True)

    def publish_failed(self, seq: int) -> None:
        """The publish did not reach the broker; send it again as backlog."""
        if self._sent.pop(seq, None) is not None:
            self._to_backlog(seq)

    def acknowledged(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """The historian committed these; returns the seqs this removed."""
        removed = []
        for first, last in ranges:
            if last - first > self.unacknowledged:
                # a wide range: walk our own (smaller) sets instead of the range
                cands = [s for s in (*self._sent, *self._live, *self._backlog, *self._held)
                         if first <= s <= last]
            else:
                cands = range(first, last + 1)
            for s in cands:
                if self._forget(s):
                    removed.append(s)
        return removed

    def hold(self, seq: int) -> None:
        """A message taken with :meth:`next` must wait for a birth (see ``held``)."""
        self._live.pop(seq, None)
        self._backlog.discard(seq)
        self._sent.pop(seq, None)
        self._held.add(seq)

    def release_held(self) -> int:
        """A birth was published: held messages are backlog again (checked again when their
        turn comes). Returns how many."""
        n = len(self._held)
        for s in self._held:
            self._to_backlog(s)
        self._held.clear()
        return n

    def dropped(self, seqs: Iterable[int]) -> None:
        """The outbox dropped these to stay within its bounds."""
        for s in seqs:
            self._forget(s)

    def expire(self, now: float) -> int:
        """Move messages unacknowledged for ``ack_timeout`` back to the backlog."""
        cutoff = now - self.ack_timeout
        late = [s for s, (t, _) in self._sent.items() if t <= cutoff]
        for s in late:
            del self._sent[s]
            self._to_backlog(s)
        self.resent += len(late)
        return len(late)

    def next_expiry(self) -> float | None:
        """Clock time at which the oldest sent message times out (None: nothing sent)."""
        if not self._sent:
            return None
        return min(t for t, _ in self._sent.values()) + self.ack_timeout

    def on_connect(self) -> None:
        self.connected = True
        self._live_turn = True

    def on_disconnect(self) -> None:
        """Unsent live messages become backlog (they will go out as historical), as do
        publishes the broker never confirmed; confirmed ones keep waiting for their ack."""
        self.connected = False
        for s in self._live:
            self._to_backlog(s)
        self._live.clear()
        lost = [s for s, (_, confirmed) in self._sent.items() if not confirmed]
        for s in lost:
            del self._sent[s]
            self._to_backlog(s)
        self.resent += len(lost)

    # ------------------------------------------------------------------ output

    def next(self) -> Dispatch | None:
        """Take the next message to publish (it is then in no state until :meth:`mark_sent`
        or :meth:`publish_failed`), alternating live and backlog."""
        if not self.connected:
            return None
        use_live = bool(self._live) and (self._live_turn or not self._backlog)
        if use_live:
            seq = next(iter(self._live))
            payload = self._live.pop(seq)
            self._live_turn = False
            return Dispatch(seq, payload, historical=False)
        while self._heap:
            seq = heapq.heappop(self._heap)
            if seq in self._backlog:
                self._backlog.discard(seq)
                self._live_turn = True
                return Dispatch(seq, None, historical=True)
        return None

    def peek_backlog(self, n: int) -> list[int]:
        """The next ``n`` backlog seqs in sending order (to prefetch their payloads)."""
        return heapq.nsmallest(n, (s for s in self._heap if s in self._backlog))

    # ------------------------------------------------------------------ internals

    def _to_backlog(self, seq: int) -> None:
        if seq not in self._backlog:
            self._backlog.add(seq)
            heapq.heappush(self._heap, seq)

    def _forget(self, seq: int) -> bool:
        found = False
        if self._live.pop(seq, None) is not None:
            found = True
        if seq in self._backlog:
            self._backlog.discard(seq)
            found = True
        if self._sent.pop(seq, None) is not None:
            found = True
        if seq in self._held:
            self._held.discard(seq)
            found = True
        if len(self._heap) > 2 * len(self._backlog) + 64:
            self._heap = sorted(self._backlog)  # drop stale entries (a sorted list is a heap)
        return found


_LIVE_MARK = b',"historical":false,'
_HISTORICAL_MARK = b',"historical":true,'


def as_historical(payload: bytes) -> bytes:
    """The same data message (same session and seq, same samples) marked historical.

    The outbox stores the encoding it made itself, in which ``"historical":false`` occurs
    exactly once as structure (inside JSON strings a quote is escaped, so the byte pattern
    cannot occur there); flipping it avoids decoding and re-encoding every replayed sample.
    Anything unexpected falls back to the strict codec.
    """
    if payload.count(_LIVE_MARK) == 1:
        return payload.replace(_LIVE_MARK, _HISTORICAL_MARK, 1)
    from dataclasses import replace

    from edge.contract.codec import decode, encode

    return encode(replace(decode(payload), historical=True))
