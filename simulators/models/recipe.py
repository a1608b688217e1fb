"""Recipes (ordered phases with setpoints) and the batch sequencer that walks through them.

Pure: the sequencer is advanced with simulated time (seconds since plant start) and returns the
transitions that happened, which the unit model applies (fill, inoculate, drain ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

BIOREACTOR_PHASES = ("setup", "inoculation", "batch_growth", "fed_batch", "harvest")


@dataclass(frozen=True)
class PhaseStep:
    """One recipe phase: its duration (simulated seconds) and the setpoints it imposes."""

    name: str
    duration_s: float
    temp_sp: float = 36.8
    ph_sp: float = 7.05
    do_sp: float = 40.0
    agit_sp: float = 80.0          # minimum agitation of the DO cascade (rpm)
    air_flow_sp: float = 1.0       # constant air sparge (L/min)
    feed_pct_per_day: float = 0.0  # continuous feed, % of the inoculated volume per day


@dataclass(frozen=True)
class Recipe:
    """A fed-batch recipe for a bioreactor."""

    name: str
    phases: tuple[PhaseStep, ...]
    media_volume_l: float = 90.0
    inoculum_l: float = 10.0
    inoculum_vcd: float = 5.0          # 1e6 cells/mL in the seed
    inoculum_viability: float = 96.0   # %
    media_glc_g_l: float = 6.0
    media_gln_mm: float = 6.0
    media_hco3_mm: float = 24.0
    media_temp_c: float = 25.0          # medium temperature when transferred into the vessel
    feed_glc_g_l: float = 100.0
    feed_gln_mm: float = 80.0
    sample_interval_s: float = 86400.0
    sample_ml: float = 10.0
    sample_delay_s: float = 1800.0
    # Compresses biology (growth, death, uptake, production, feed and base) by this factor so a
    # demonstration batch of minutes shows a whole growth curve; gas transfer and control loops
    # keep their real time constants. 1.0 for a real-time recipe.
    bio_time_scale: float = 1.0

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


@dataclass(frozen=True)
class Transition:
    """What the sequencer did at ``t``: ``kind`` is ``batch_start``, ``phase`` or ``batch_end``."""

    kind: str
    t: float
    phase: PhaseStep | None = None
    batch_no: int | None = None


@dataclass
class BatchSequencer:
    """Runs batches of one recipe back to back on a schedule.

    First batch starts at ``start_s``; with ``repeat`` the next one starts ``gap_s`` after the
    previous ended, up to ``max_batches`` (0 = unlimited). Batch numbers come from
    ``next_batch_no`` so a plant can number batches across units.
    """

    recipe: Recipe
    next_batch_no: Callable[[], int]
    start_s: float = 0.0
    gap_s: float = 60.0
    repeat: bool = True
    max_batches: int = 0
    batches_started: int = 0
    batch_no: int | None = None
    phase_index: int = -1
    phase_started_s: float = 0.0
    next_start_s: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.next_start_s is None:
            self.next_start_s = self.start_s

    @property
    def active(self) -> bool:
        return self.batch_no is not None

    @property
    def phase(self) -> PhaseStep | None:
        return self.recipe.phases[self.phase_index] if self.active else None

    def phase_elapsed(self, t: float) -> float:
        return t - self.phase_started_s

    def advance(self, t: float) -> list[Transition]:
        """Apply every transition due at or before ``t`` (in order) and return them."""
        out: list[Transition] = []
        while True:
            if self.batch_no is None:
                if self.next_start_s is None or t < self.next_start_s:
                    return out
                at = self.next_start_s
                self.batch_no = self.next_batch_no()
                self.batches_started += 1
                self.phase_index = 0
                self.phase_started_s = at
                out.append(Transition("batch_start", at, batch_no=self.batch_no))
                out.append(Transition("phase", at, self.recipe.phases[0], self.batch_no))
                continue
            end = self.phase_started_s + self.recipe.phases[self.phase_index].duration_s
            if t < end:
                return out
            if self.phase_index + 1 < len(self.recipe.phases):
                self.phase_index += 1
                self.phase_started_s = end
                out.append(Transition("phase", end, self.recipe.phases[self.phase_index], self.batch_no))
                continue
            out.append(Transition("batch_end", end, batch_no=self.batch_no))
            self.batch_no = None
            self.phase_index = -1
            more = self.repeat and (self.max_batches == 0 or self.batches_started < self.max_batches)
            self.next_start_s = end + self.gap_s if more else None
