"""What sources hand to the agent: readings of tags and changes of batch-context values.

Sources call a :class:`Sink` synchronously from the event loop; the sink must not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from edge.contract.messages import TagInfo, Value

ContextField = Literal["batch", "phase", "recipe"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One acquired value. ``unit`` names the ISA-88 unit whose context applies (or None)."""

    tag: str
    ts: int  # acquisition time, µs since epoch, UTC
    value: Value
    quality: int = 0
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class ContextChange:
    """A batch/phase/recipe value of ``unit`` as observed at ``ts`` (``None``: cleared)."""

    unit: str
    field: ContextField
    value: str | None
    ts: int


class Sink(Protocol):
    def reading(self, r: Reading) -> None: ...

    def context(self, c: ContextChange) -> None: ...

    def metadata(self, tags: list[TagInfo]) -> None:
        """A source learned more about its tags (units, ranges, ...); republish the birth."""
