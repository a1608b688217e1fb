"""Fed-batch bioreactor (mammalian, CHO-like) with its control loops.

State is kept as *amounts* in the vessel (cells, grams, millimoles) plus the volume, so
dilution by feed and base and removal by sampling or harvest follow from the bookkeeping, and
the mass balances in :attr:`Bioreactor.ledger` hold by construction (and are tested).

Kinetics (rates per hour, ``x`` = viable cells in 1e9 cells/L = 1e6 cells/mL):

* growth ``mu = mu_max * S_glc * S_gln * f(T) * f(pH) * f(DO) * I_lac * I_amm`` (Monod
  limitation, Gaussian optima, non-competitive inhibition); death ``kd`` rises with glucose
  starvation, ammonia and contamination; lysis turns dead cells into debris.
* glucose/glutamine uptake = growth-associated + maintenance; lactate produced from glucose
  and consumed late in culture; ammonia from glutamine uptake and its spontaneous decay.
* oxygen: ``OTR = kLa * (DO* - DO)`` with ``kLa`` from agitation and superficial gas flow;
  ``DO*`` follows the O2 fraction of the sparge gas. DO is held by a cascade: a PI
  controller output of 0-100 % raises agitation from its minimum to the maximum, 100-200 %
  adds pure O2.
* pH from the bicarbonate buffer, ``pH = 6.1 + log10(HCO3 / CO2)``. Lactate production
  consumes bicarbonate into dissolved CO2; CO2 is stripped by the gas (``kLa_CO2``) and
  added by CO2 sparge (acid side of the pH loop); base (1 M NaHCO3) is pumped on the
  alkaline side.
* temperature: vessel heated/cooled through a jacket whose temperature follows a PI
  controller output with a first-order lag.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from simulators.models.recipe import BatchSequencer, PhaseStep, Recipe, Transition
from simulators.models.signals import SignalSpec, f, sp
from simulators.status import BAD_WAITING_FOR_INITIAL_DATA

O2_AIR = 0.2095
CSTAR_AIR_MM = 0.21          # O2 solubility in medium at 37 degC under air (mmol/L)
CO2_SOLUBILITY = 0.0307      # mmol/L per mmHg at 37 degC
ATM_MMHG = 760.0
LAC_G_PER_MMOL = 0.09008
BASE_MM = 1000.0             # 1 M NaHCO3: mmol bicarbonate per litre of base

SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("BATCH_ID", "string", None, "Batch identifier (empty when idle)", kind="context"),
    SignalSpec("PHASE", "string", None, "Current recipe phase (empty when idle)", kind="context"),
    SignalSpec("RECIPE", "string", None, "Recipe of the running batch (empty when idle)", kind="context"),
    f("TEMP", "degC", "Culture temperature", 0, 50, 0.02),
    sp("TEMP_SP", "degC", "Temperature setpoint", 4, 45),
    f("JACKET_TEMP", "degC", "Jacket temperature", 0, 60, 0.05),
    f("PH", "pH", "Culture pH", 5.0, 9.0, 0.004),
    sp("PH_SP", "pH", "pH setpoint (deadband +-0.03 on the base side)", 6.5, 7.8),
    f("DO", "%", "Dissolved oxygen, % of air saturation", 0, 100, 0.3),
    sp("DO_SP", "%", "Dissolved oxygen setpoint", 0, 100),
    f("AGIT", "rpm", "Agitator speed", 0, 400, 0.3),
    sp("AGIT_SP", "rpm", "Minimum agitation of the DO cascade", 0, 400),
    f("AIR_FLOW", "L/min", "Air sparge flow", 0, 20, 0.003),
    sp("AIR_FLOW_SP", "L/min", "Air sparge flow setpoint", 0, 20),
    f("O2_FLOW", "L/min", "Oxygen sparge flow (DO cascade)", 0, 10, 0.002),
    f("CO2_FLOW", "L/min", "CO2 sparge flow (pH control, acid side)", 0, 5, 0.001),
    f("BASE_TOTAL", "mL", "Cumulative base added (1 M NaHCO3)", 0, 50000),
    f("FEED_RATE", "L/h", "Feed pump rate", 0, 5),
    f("FEED_TOTAL", "L", "Cumulative feed added", 0, 200),
    f("VOLUME", "L", "Working volume", 0, 250, 0.02),
    f("PCO2", "mmHg", "Dissolved CO2 partial pressure", 0, 300, 0.3),
    f("KLA", "1/h", "Oxygen transfer coefficient (calculated)", 0, 80),
    f("OUR", "mmol/L/h", "Oxygen uptake rate (calculated)", 0, 30),
    f("VCD", "1e6 cells/mL", "Viable cell density (capacitance probe)", 0, 60, 0.04),
    f("TCD", "1e6 cells/mL", "Total cell density", 0, 80, 0.05),
    f("VIAB", "%", "Viability", 0, 100, 0.15),
    f("GLC", "g/L", "Glucose (in-line Raman)", 0, 30, 0.03),
    f("GLN", "mmol/L", "Glutamine (in-line Raman)", 0, 30, 0.04),
    f("LAC", "g/L", "Lactate (in-line Raman)", 0, 15, 0.03),
    f("NH4", "mmol/L", "Ammonium (in-line Raman)", 0, 30, 0.04),
    f("TITER", "g/L", "Product titer (in-line estimate)", 0, 15, 0.01),
    f("VCD_OFF", "1e6 cells/mL", "Viable cell density, offline sample", 0, 60, kind="sample"),
    f("VIAB_OFF", "%", "Viability, offline sample", 0, 100, kind="sample"),
    f("GLC_OFF", "g/L", "Glucose, offline sample", 0, 30, kind="sample"),
    f("LAC_OFF", "g/L", "Lactate, offline sample", 0, 15, kind="sample"),
    f("TITER_OFF", "g/L", "Titer, offline sample", 0, 15, kind="sample"),
    SignalSpec("SAMPLE_NO", "int", None, "Number of offline samples taken in this batch", 0, 1000, kind="sample"),
)

SAMPLE_SIGNALS = tuple(s.name for s in SIGNALS if s.kind == "sample")


@dataclass(frozen=True)
class Kinetics:
    """Cell-line constants (per hour; cells in 1e9, glucose/lactate/titer in g, mg)."""

    mu_max: float = 0.048
    k_glc: float = 0.15            # g/L
    k_gln: float = 0.1             # mmol/L
    ki_lac: float = 6.0            # g/L
    ki_amm: float = 25.0           # mmol/L
    t_opt: float = 36.8
    ph_opt: float = 7.05
    kd0: float = 0.0015
    kd_starve: float = 0.03
    kd_amm: float = 0.012
    k_lysis: float = 0.01
    y_x_glc: float = 3.0           # 1e9 cells per g glucose
    m_glc: float = 0.004           # g per 1e9 cells per h
    y_x_gln: float = 2.0           # 1e9 cells per mmol glutamine
    m_gln: float = 0.002
    y_lac_glc: float = 0.85        # g lactate per g glucose (overflow)
    q_lac_up: float = 0.012        # g per 1e9 cells per h (late consumption)
    y_amm_gln: float = 0.75
    k_gln_decay: float = 0.0025    # spontaneous glutamine degradation (1/h)
    q_p: float = 1.1               # mg product per 1e9 viable cells per h
    q_o2: float = 0.15             # mmol per 1e9 cells per h
    rq: float = 0.95


@dataclass(frozen=True)
class Vessel:
    """Vessel and actuator limits."""

    max_volume_l: float = 250.0
    agit_max: float = 220.0
    o2_max_l_min: float = 8.0
    co2_max_l_min: float = 2.0
    base_max_ml_min: float = 40.0
    kla_ref: float = 3.0           # 1/h at 100 rpm and 0.01 vvm
    kla_surface: float = 0.4       # 1/h headspace transfer without sparge
    room_temp: float = 21.0
    jacket_tau_s: float = 120.0
    heat_tau_s: float = 900.0      # vessel time constant at 100 L


@dataclass
class State:
    volume_l: float = 0.0
    cells_v: float = 0.0       # 1e9 viable cells
    cells_t: float = 0.0       # 1e9 total cells
    glc_g: float = 0.0
    gln_mmol: float = 0.0
    lac_g: float = 0.0
    amm_mmol: float = 0.0
    product_mg: float = 0.0
    hco3_mmol: float = 0.0
    co2_mmol: float = 0.0
    bacteria: float = 0.0      # contaminant load (arbitrary units per litre * L)
    do: float = 100.0
    temp: float = 21.0
    jacket: float = 21.0
    agit: float = 0.0
    air: float = 0.0
    o2: float = 0.0
    co2_flow: float = 0.0
    feed_rate_l_h: float = 0.0
    base_total_ml: float = 0.0
    feed_total_l: float = 0.0
    kla: float = 0.0
    our: float = 0.0
    # controller memories
    do_i: float = 0.0
    ph_i: float = 0.0
    temp_i: float = 0.0


@dataclass
class Ledger:
    """Cumulative inputs and outputs per species, for mass-balance checks.

    For each species: ``amount_now == added + fed - consumed + produced - removed``.
    """

    volume_in_l: float = 0.0
    volume_out_l: float = 0.0
    glc_in: float = 0.0
    glc_consumed: float = 0.0
    glc_out: float = 0.0
    gln_in: float = 0.0
    gln_consumed: float = 0.0
    gln_out: float = 0.0
    lac_produced: float = 0.0
    lac_consumed: float = 0.0
    lac_out: float = 0.0
    hco3_in: float = 0.0
    hco3_reacted: float = 0.0
    hco3_out: float = 0.0


@dataclass
class OfflineSample:
    taken_s: float
    ready_s: float
    values: dict[str, float]


@dataclass
class Bioreactor:
    """One bioreactor running batches of ``recipe`` as scheduled by ``sequencer``.

    Drive it with :meth:`step` (fixed or variable ``dt``); read :meth:`values`. Setpoint writes
    (:meth:`write`) are operator actions that hold until the next phase starts.
    """

    name: str
    recipe: Recipe
    sequencer: BatchSequencer
    rng: random.Random
    kin: Kinetics = field(default_factory=Kinetics)
    vessel: Vessel = field(default_factory=Vessel)
    batch_prefix: str = "B-"
    t: float = 0.0
    state: State = field(default_factory=State)
    ledger: Ledger = field(default_factory=Ledger)
    setpoints: dict[str, float] = field(default_factory=dict)
    batch_id: str = ""
    phase_name: str = ""
    recipe_name: str = ""
    samples_taken: int = 0
    next_sample_s: float | None = None
    pending_samples: list[OfflineSample] = field(default_factory=list)
    last_sample: dict[str, float] = field(default_factory=dict)
    harvest_rate_l_s: float = 0.0
    initial_volume_l: float = 0.0
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=100))   # recent, for inspection

    def __post_init__(self) -> None:
        if not self.setpoints:
            self.setpoints = _idle_setpoints()

    # -- operator actions ------------------------------------------------------------------
    def write(self, signal: str, value: float) -> None:
        """Operator setpoint change (``TEMP_SP``, ``PH_SP``, ``DO_SP``, ``AGIT_SP``, ``AIR_FLOW_SP``)."""
        if signal not in self.setpoints:
            raise KeyError(f"{self.name}.{signal} is not a writable setpoint")
        self.setpoints[signal] = float(value)

    def contaminate(self, load: float = 1.0) -> None:
        """Introduce a bacterial contamination (DO collapses and pH drops as it grows)."""
        if self.state.volume_l > 0:
            self.state.bacteria += max(load, 1e-3) * self.state.volume_l

    # -- time ------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` simulated seconds."""
        for tr in self.sequencer.advance(self.t):
            self._apply(tr)
            self.transitions.append(tr)
        self._sample()
        self._integrate(dt)
        self.t += dt

    def _apply(self, tr: Transition) -> None:
        s = self.state
        if tr.kind == "batch_start":
            self.batch_id = f"{self.batch_prefix}{tr.batch_no:04d}"
            self.recipe_name = self.recipe.name
            self.samples_taken = 0
            self.last_sample = {}
            self.pending_samples = []
            self.next_sample_s = None
            self._reset_liquid()
        elif tr.kind == "phase":
            assert tr.phase is not None
            self.phase_name = tr.phase.name
            self.setpoints = _phase_setpoints(tr.phase)
            if tr.phase.name == "setup":
                self._fill_media()
            elif tr.phase.name == "inoculation":
                self._inoculate()
                self.next_sample_s = tr.t
            elif tr.phase.name == "harvest":
                self.harvest_rate_l_s = s.volume_l / max(tr.phase.duration_s, 1.0)
        elif tr.kind == "batch_end":
            self._remove(s.volume_l)
            self.batch_id = ""
            self.phase_name = ""
            self.recipe_name = ""
            self.next_sample_s = None
            self.harvest_rate_l_s = 0.0
            self.setpoints = _idle_setpoints()

    def _reset_liquid(self) -> None:
        keep = self.state
        self.state = State(temp=keep.temp, jacket=keep.jacket)
        self.ledger = Ledger()

    def _fill_media(self) -> None:
        r, s, lg = self.recipe, self.state, self.ledger
        v = r.media_volume_l
        s.volume_l += v
        s.glc_g += r.media_glc_g_l * v
        s.gln_mmol += r.media_gln_mm * v
        s.hco3_mmol += r.media_hco3_mm * v
        # medium equilibrated with air + 5 % CO2 before transfer
        s.co2_mmol += 0.05 * ATM_MMHG * CO2_SOLUBILITY * v
        s.do = 100.0
        s.temp = r.media_temp_c
        s.jacket = max(s.jacket, r.media_temp_c)   # the jacket is tempered for the transfer
        lg.volume_in_l += v
        lg.glc_in += r.media_glc_g_l * v
        lg.gln_in += r.media_gln_mm * v
        lg.hco3_in += r.media_hco3_mm * v
        self.initial_volume_l = v

    def _inoculate(self) -> None:
        r, s, lg = self.recipe, self.state, self.ledger
        v = r.inoculum_l
        cells = r.inoculum_vcd * v
        s.volume_l += v
        s.cells_v += cells
        s.cells_t += cells * 100.0 / max(r.inoculum_viability, 1.0)
        # seed medium is spent medium: half the fresh glucose/glutamine, some lactate
        s.glc_g += 0.5 * r.media_glc_g_l * v
        s.gln_mmol += 0.5 * r.media_gln_mm * v
        s.hco3_mmol += r.media_hco3_mm * v
        lg.volume_in_l += v
        lg.glc_in += 0.5 * r.media_glc_g_l * v
        lg.gln_in += 0.5 * r.media_gln_mm * v
        lg.hco3_in += r.media_hco3_mm * v
        self.initial_volume_l = s.volume_l

    def _remove(self, v: float) -> None:
        """Remove ``v`` litres of well-mixed broth (sampling, harvest)."""
        s, lg = self.state, self.ledger
        if s.volume_l <= 0 or v <= 0:
            return
        v = min(v, s.volume_l)
        frac = v / s.volume_l
        lg.volume_out_l += v
        lg.glc_out += s.glc_g * frac
        lg.gln_out += s.gln_mmol * frac
        lg.lac_out += s.lac_g * frac
        lg.hco3_out += s.hco3_mmol * frac
        for name in ("cells_v", "cells_t", "glc_g", "gln_mmol", "lac_g", "amm_mmol", "product_mg",
                     "hco3_mmol", "co2_mmol", "bacteria"):
            setattr(s, name, getattr(s, name) * (1.0 - frac))
        s.volume_l -= v
        if s.volume_l < 1e-9:
            s.volume_l = 0.0

    def _sample(self) -> None:
        """Take due offline samples; publish results after the analysis delay."""
        r = self.recipe
        ready = [p for p in self.pending_samples if p.ready_s <= self.t]
        for p in ready:
            self.last_sample = dict(p.values)
            self.pending_samples.remove(p)
        if self.next_sample_s is None or self.t < self.next_sample_s or self.state.volume_l <= 0:
            return
        c = self.concentrations()
        rng = self.rng
        # analyser errors: cell counter ~5 % CV, metabolite analyser ~2 %, titer assay ~4 %
        values = {
            "VCD_OFF": max(0.0, c["vcd"] * (1 + rng.gauss(0, 0.05))),
            "VIAB_OFF": min(100.0, max(0.0, c["viab"] + rng.gauss(0, 1.0))),
            "GLC_OFF": max(0.0, c["glc"] * (1 + rng.gauss(0, 0.02))),
            "LAC_OFF": max(0.0, c["lac"] * (1 + rng.gauss(0, 0.02))),
            "TITER_OFF": max(0.0, c["titer"] * (1 + rng.gauss(0, 0.04))),
        }
        self.samples_taken += 1
        values["SAMPLE_NO"] = float(self.samples_taken)
        self._remove(r.sample_ml / 1000.0)
        self.pending_samples.append(OfflineSample(self.t, self.t + r.sample_delay_s, values))
        self.next_sample_s = self.t + r.sample_interval_s

    # -- physics ---------------------------------------------------------------------------
    def concentrations(self) -> dict[str, float]:
        s = self.state
        v = s.volume_l
        if v <= 1e-6:
            return {k: 0.0 for k in ("vcd", "tcd", "viab", "glc", "gln", "lac", "amm", "titer", "hco3",
                                      "co2", "bact")}
        return {
            "vcd": s.cells_v / v,
            "tcd": s.cells_t / v,
            "viab": 100.0 * s.cells_v / s.cells_t if s.cells_t > 1e-12 else 0.0,
            "glc": s.glc_g / v,
            "gln": s.gln_mmol / v,
            "lac": s.lac_g / v,
            "amm": s.amm_mmol / v,
            "titer": s.product_mg / v / 1000.0,
            "hco3": s.hco3_mmol / v,
            "co2": s.co2_mmol / v,
            "bact": s.bacteria / v,
        }

    def ph(self) -> float:
        s = self.state
        if s.volume_l <= 1e-6:
            return 7.0  # probe parked in storage buffer
        co2 = max(s.co2_mmol / s.volume_l, 1e-3)
        hco3 = max(s.hco3_mmol / s.volume_l, 1e-3)
        return 6.1 + math.log10(hco3 / co2)

    def _integrate(self, dt: float) -> None:
        s, k, vs, lg = self.state, self.kin, self.vessel, self.ledger
        sp_ = self.setpoints
        h = dt / 3600.0 * self.recipe.bio_time_scale   # biological hours in this step
        v = s.volume_l
        running = bool(self.batch_id)

        # --- temperature loop: PI on vessel temperature -> jacket setpoint -> jacket lag
        if running and v > 0:
            err = sp_["TEMP_SP"] - s.temp
            s.temp_i = _clamp(s.temp_i + err * dt / 600.0, -10, 10)
            jacket_sp = _clamp(sp_["TEMP_SP"] + 6.0 * err + 6.0 * s.temp_i, 4.0, 50.0)
        else:
            jacket_sp = vs.room_temp
            s.temp_i = 0.0
        s.jacket += (jacket_sp - s.jacket) * min(1.0, dt / vs.jacket_tau_s)
        tau = vs.heat_tau_s * (max(v, 5.0) / 100.0) ** (1 / 3)
        s.temp += ((s.jacket - s.temp) + 0.02 * (vs.room_temp - s.temp)) * min(1.0, dt / tau)

        if not running or v <= 0:
            s.agit = s.air = s.o2 = s.co2_flow = s.feed_rate_l_h = 0.0
            s.kla = s.our = 0.0
            s.do += (100.0 - s.do) * min(1.0, dt / 600.0)
            s.do_i = s.ph_i = 0.0
            return

        c = self.concentrations()
        ph = self.ph()

        # --- DO cascade: PI output 0..200 % -> agitation, then O2
        do_err = sp_["DO_SP"] - s.do
        s.do_i = _clamp(s.do_i + 0.02 * do_err * dt, 0.0, 200.0)
        out = _clamp(4.0 * do_err + s.do_i, 0.0, 200.0)
        agit_min = _clamp(sp_["AGIT_SP"], 0.0, vs.agit_max)
        s.agit = agit_min + (vs.agit_max - agit_min) * min(out, 100.0) / 100.0
        s.o2 = vs.o2_max_l_min * max(out - 100.0, 0.0) / 100.0
        s.air = max(sp_["AIR_FLOW_SP"], 0.0)

        # --- pH: CO2 sparge above setpoint (PI), base below setpoint minus deadband (P)
        ph_err = ph - sp_["PH_SP"]
        s.ph_i = _clamp(s.ph_i + ph_err * dt / 900.0, 0.0, 1.0)
        s.co2_flow = vs.co2_max_l_min * _clamp(2.0 * ph_err + s.ph_i, 0.0, 1.0)
        base_ml_min = vs.base_max_ml_min * _clamp((sp_["PH_SP"] - 0.03 - ph) / 0.1, 0.0, 1.0)

        # --- gas transfer
        gas = s.air + s.o2 + s.co2_flow
        vvm = gas / v
        s.kla = vs.kla_surface + (vs.kla_ref * (s.agit / 100.0) ** 1.5 * (vvm / 0.01) ** 0.5 if gas > 0 else 0.0)
        y_o2 = (O2_AIR * s.air + s.o2) / gas if gas > 0 else O2_AIR
        y_co2 = (0.0004 * s.air + s.co2_flow) / gas if gas > 0 else 0.0004
        do_star = 100.0 * y_o2 / O2_AIR

        # --- kinetics
        glc, gln, lac, amm, xv = c["glc"], c["gln"], c["lac"], c["amm"], c["vcd"]
        f_t = math.exp(-(((s.temp - k.t_opt) / 5.0) ** 2))
        f_ph = math.exp(-(((ph - k.ph_opt) / 0.35) ** 2))
        f_do = s.do / (s.do + 2.0)
        mu = (k.mu_max * glc / (k.k_glc + glc) * gln / (k.k_gln + gln) * f_t * f_ph * f_do
              * k.ki_lac / (k.ki_lac + lac) * k.ki_amm / (k.ki_amm + amm))
        bact = c["bact"]
        kd = (k.kd0 + k.kd_starve * 0.1 / (0.1 + glc) + k.kd_amm * amm / (amm + 15.0)
              + 0.05 * bact / (bact + 1.0) + 0.02 * (1.0 - f_do))
        dvc = (mu - kd) * s.cells_v * h
        dtc = (mu * s.cells_v - k.k_lysis * (s.cells_t - s.cells_v)) * h
        q_glc = (mu / k.y_x_glc + k.m_glc * glc / (glc + 0.05)) * s.cells_v * h
        q_glc = min(q_glc, s.glc_g)
        q_gln = (mu / k.y_x_gln + k.m_gln * gln / (gln + 0.05)) * s.cells_v * h
        q_gln = min(q_gln, s.gln_mmol)
        gln_decay = min(k.k_gln_decay * s.gln_mmol * h, s.gln_mmol - q_gln)
        lac_made = k.y_lac_glc * glc / (glc + 1.0) * q_glc
        lac_used = min(k.q_lac_up * lac / (lac + 0.5) * (1.0 - mu / k.mu_max) * s.cells_v * h,
                       s.lac_g + lac_made)
        # contaminant: fast-growing, oxygen-hungry, acid-producing
        # logistic growth to a carrying capacity of 50 units/L
        d_bact = 0.8 * s.bacteria * glc / (glc + 0.1) * max(0.0, 1.0 - bact / 50.0) * h
        bact_acid = 0.6 * s.bacteria * h / v     # mmol/L of organic acid
        s.our = (k.q_o2 * xv * f_do + 2.0 * bact * s.do / (s.do + 1.0))
        our = s.our

        # --- apply changes to amounts
        s.cells_v = max(0.0, s.cells_v + dvc)
        s.cells_t = max(s.cells_v, s.cells_t + dtc)
        s.glc_g -= q_glc
        s.gln_mmol -= q_gln + gln_decay
        s.lac_g += lac_made - lac_used
        s.amm_mmol += k.y_amm_gln * q_gln + gln_decay
        s.product_mg += k.q_p * s.cells_v * h
        s.bacteria += d_bact
        lg.glc_consumed += q_glc
        lg.gln_consumed += q_gln + gln_decay
        lg.lac_produced += lac_made
        lg.lac_consumed += lac_used

        # acid from lactate (and contaminant) turns bicarbonate into CO2; ammonia takes up H+
        acid_mmol = (lac_made - lac_used) / LAC_G_PER_MMOL + bact_acid * v
        amm_mmol = k.y_amm_gln * q_gln + gln_decay
        d_hco3 = -acid_mmol + amm_mmol
        # other buffers (phosphate, proteins) take over below ~0.5 mM bicarbonate
        d_hco3 = max(d_hco3, min(0.0, 0.5 * v - s.hco3_mmol))
        s.hco3_mmol += d_hco3
        s.co2_mmol = max(0.0, s.co2_mmol - d_hco3)
        lg.hco3_reacted += d_hco3

        # oxygen and CO2 transfer (DO in % air saturation; concentrations per litre)
        otr = s.kla * (do_star - s.do) / 100.0 * CSTAR_AIR_MM
        hg = dt / 3600.0   # gas transfer runs on real time
        s.do = max(0.0, s.do + (otr - our) * hg * 100.0 / CSTAR_AIR_MM)
        co2_star = y_co2 * ATM_MMHG * CO2_SOLUBILITY
        co2_conc = s.co2_mmol / v
        kla_co2 = 0.9 * s.kla
        ctr = kla_co2 * (co2_conc - co2_star)
        cer = k.rq * our
        s.co2_mmol = max(1e-3 * v, s.co2_mmol + (cer - ctr) * v * hg)

        # --- liquid additions: base and feed dilute, harvest drains
        base_l = base_ml_min * self.recipe.bio_time_scale * dt / 60.0 / 1000.0
        phase = self.sequencer.phase
        feed_pct = phase.feed_pct_per_day if phase else 0.0
        s.feed_rate_l_h = feed_pct / 100.0 * self.initial_volume_l / 24.0
        feed_l = s.feed_rate_l_h * h
        room = max(self.vessel.max_volume_l - s.volume_l, 0.0)
        feed_l = min(feed_l, room)
        base_l = min(base_l, max(room - feed_l, 0.0))
        if base_l > 0:
            s.volume_l += base_l
            s.hco3_mmol += BASE_MM * base_l
            s.base_total_ml += base_l * 1000.0
            lg.volume_in_l += base_l
            lg.hco3_in += BASE_MM * base_l
        if feed_l > 0:
            r = self.recipe
            s.volume_l += feed_l
            s.glc_g += r.feed_glc_g_l * feed_l
            s.gln_mmol += r.feed_gln_mm * feed_l
            s.feed_total_l += feed_l
            lg.volume_in_l += feed_l
            lg.glc_in += r.feed_glc_g_l * feed_l
            lg.gln_in += r.feed_gln_mm * feed_l
        if self.phase_name == "harvest" and self.harvest_rate_l_s > 0:
            self._remove(self.harvest_rate_l_s * dt)

    # -- outputs ---------------------------------------------------------------------------
    def values(self) -> dict[str, float | int | str]:
        """True (noise-free) values by signal mnemonic."""
        s, sp_ = self.state, self.setpoints
        c = self.concentrations()
        v = s.volume_l
        out: dict[str, float | int | str] = {
            "BATCH_ID": self.batch_id,
            "PHASE": self.phase_name,
            "RECIPE": self.recipe_name,
            "TEMP": s.temp,
            "TEMP_SP": sp_["TEMP_SP"],
            "JACKET_TEMP": s.jacket,
            "PH": self.ph(),
            "PH_SP": sp_["PH_SP"],
            "DO": min(s.do, 100.0),
            "DO_SP": sp_["DO_SP"],
            "AGIT": s.agit,
            "AGIT_SP": sp_["AGIT_SP"],
            "AIR_FLOW": s.air,
            "AIR_FLOW_SP": sp_["AIR_FLOW_SP"],
            "O2_FLOW": s.o2,
            "CO2_FLOW": s.co2_flow,
            "BASE_TOTAL": s.base_total_ml,
            "FEED_RATE": s.feed_rate_l_h,
            "FEED_TOTAL": s.feed_total_l,
            "VOLUME": v,
            "PCO2": (s.co2_mmol / v / CO2_SOLUBILITY) if v > 1e-6 else 0.3,
            "KLA": s.kla,
            "OUR": s.our,
            "VCD": c["vcd"],
            "TCD": c["tcd"],
            "VIAB": c["viab"],
            "GLC": c["glc"],
            "GLN": c["gln"],
            "LAC": c["lac"],
            "NH4": c["amm"],
            "TITER": c["titer"],
        }
        for name in ("VCD_OFF", "VIAB_OFF", "GLC_OFF", "LAC_OFF", "TITER_OFF"):
            out[name] = self.last_sample.get(name, 0.0)
        out["SAMPLE_NO"] = int(self.last_sample.get("SAMPLE_NO", 0))
        return out

    def statuses(self) -> dict[str, int]:
        """Status overrides: offline results read BadWaitingForInitialData until the first one."""
        if self.last_sample:
            return {}
        return {name: BAD_WAITING_FOR_INITIAL_DATA for name in SAMPLE_SIGNALS}


def _phase_setpoints(p: PhaseStep) -> dict[str, float]:
    return {"TEMP_SP": p.temp_sp, "PH_SP": p.ph_sp, "DO_SP": p.do_sp, "AGIT_SP": p.agit_sp,
            "AIR_FLOW_SP": p.air_flow_sp}


def _idle_setpoints() -> dict[str, float]:
    return {"TEMP_SP": 21.0, "PH_SP": 7.0, "DO_SP": 0.0, "AGIT_SP": 0.0, "AIR_FLOW_SP": 0.0}


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
