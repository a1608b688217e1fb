"""Automated cell-processing system: a closed wash/concentrate/formulate/fill device.

Runs lots through prime -> load -> wash -> concentrate -> formulate -> fill -> complete on a
schedule (or when the START coil is written). Bag weights follow the flows; inlet pressure
rises with flow and with clogging, which builds up during loading; an excursion above the
pressure limit raises the alarm bit and costs cell recovery.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from simulators.models.signals import SignalSpec

PHASES = ("prime", "load", "wash", "concentrate", "formulate", "fill", "complete")
PHASE_CODES: dict[int, str] = {0: "", **{i + 1: p for i, p in enumerate(PHASES)}}

SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("PHASE_CODE", "int", None, "Phase code (0 idle, 1 prime, 2 load, 3 wash, 4 concentrate, "
               "5 formulate, 6 fill, 7 complete)", 0, 7, encoding="uint16", kind="context"),
    SignalSpec("LOT_NO", "int", None, "Lot number of the run (lot id = prefix + 4 digits); 0 before the first run",
               0, 4294967295, encoding="uint32", kind="context"),
    SignalSpec("FLOW", "float", "mL/min", "Pump flow rate", 0, 500, noise=0.3, encoding="float32"),
    SignalSpec("INLET_P", "float", "mbar", "Inlet pressure", 0, 2000, noise=2.0, encoding="float32"),
    SignalSpec("ROTOR", "int", "rpm", "Centrifuge rotor speed", 0, 6000, encoding="uint16"),
    SignalSpec("TEMP", "float", "degC", "Chamber temperature", 0, 50, noise=0.02, encoding="int16", scale=0.01),
    SignalSpec("SRC_BAG", "float", "g", "Source bag weight", 0, 20000, noise=0.2, encoding="int32", scale=0.1),
    SignalSpec("WASTE_BAG", "float", "g", "Waste bag weight", 0, 50000, noise=0.2, encoding="int32", scale=0.1),
    SignalSpec("PRODUCT_BAG", "float", "g", "Final product bag weight", 0, 5000, noise=0.1, encoding="int32",
               scale=0.1),
    SignalSpec("PROC_VOL", "float", "mL", "Volume processed in this run", 0, 100000, encoding="float32"),
    SignalSpec("RECOVERY", "float", "%", "Estimated cell recovery", 0, 100, encoding="float32"),
    SignalSpec("PHASE_TIME", "int", "s", "Time in the current phase (saturates at 65535)", 0, 65535,
               encoding="uint16"),
    SignalSpec("FLOW_SP", "float", "mL/min", "Load/wash flow setpoint", 10, 500, writable=True, table="holding",
               encoding="float32", kind="setpoint"),
    SignalSpec("PRESS_LIMIT", "float", "mbar", "Inlet pressure alarm limit", 100, 2000, writable=True,
               table="holding", encoding="int16", kind="setpoint"),
    SignalSpec("TEMP_SP", "float", "degC", "Chamber temperature setpoint", 2, 40, writable=True, table="holding",
               encoding="int16", scale=0.01, kind="setpoint"),
    SignalSpec("START", "bool", None, "Write 1 to start a run when idle", writable=True, table="coil",
               encoding="bool", kind="setpoint"),
    SignalSpec("ABORT", "bool", None, "Write 1 to abort the running lot", writable=True, table="coil",
               encoding="bool", kind="setpoint"),
    SignalSpec("RUNNING", "bool", None, "A run is in progress", table="discrete", encoding="bool", kind="state"),
    SignalSpec("PRESS_ALARM", "bool", None, "Inlet pressure above the limit", table="discrete", encoding="bool",
               kind="state"),
    SignalSpec("COMPLETE", "bool", None, "Last run completed", table="discrete", encoding="bool", kind="state"),
)

# flow as a fraction of FLOW_SP, rotor speed, and where the liquid goes, per phase
_PROFILE = {
    "prime": (0.5, 0, "waste"),
    "load": (1.0, 4000, "load"),
    "wash": (1.0, 4000, "waste"),
    "concentrate": (0.4, 3000, "waste"),
    "formulate": (0.2, 1000, "chamber"),
    "fill": (0.3, 0, "product"),
    "complete": (0.0, 0, None),
}


@dataclass
class CellProcessor:
    name: str
    rng: random.Random
    durations: dict[str, float]
    start_s: float = 0.0
    gap_s: float = 120.0
    repeat: bool = True
    source_ml: float = 1000.0
    t: float = 0.0
    lot_no: int = 0
    phase_index: int = -1
    phase_started: float = 0.0
    next_start: float | None = 0.0
    flow_sp: float = 200.0
    press_limit: float = 800.0
    temp_sp: float = 20.0
    temp: float = 21.0
    flow: float = 0.0
    rotor: float = 0.0
    pressure: float = 0.0
    clog: float = 0.0
    src: float = 0.0
    waste: float = 0.0
    product: float = 0.0
    chamber: float = 0.0
    processed: float = 0.0
    recovery: float = 0.0
    alarm: bool = False
    complete: bool = False
    start_requested: bool = False
    events: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=100))   # recent, for inspection

    @classmethod
    def from_config(cls, cfg, rng: random.Random) -> "CellProcessor":
        return cls(cfg.name, rng, dict(cfg.phase_durations), start_s=cfg.start, gap_s=cfg.gap, repeat=cfg.repeat,
                   source_ml=cfg.source_volume_ml, next_start=cfg.start)

    @property
    def phase(self) -> str:
        return PHASES[self.phase_index] if self.phase_index >= 0 else ""

    def write(self, signal: str, value: float) -> None:
        if signal == "FLOW_SP":
            self.flow_sp = float(value)
        elif signal == "PRESS_LIMIT":
            self.press_limit = float(value)
        elif signal == "TEMP_SP":
            self.temp_sp = float(value)
        elif signal == "START":
            if value:
                self.start_requested = True
        elif signal == "ABORT":
            if value and self.phase_index >= 0:
                self.events.append((self.t, "abort"))
                self._end_run(completed=False)
        else:
            raise KeyError(f"{self.name}.{signal} is not writable")

    def _start_run(self) -> None:
        self.lot_no += 1
        self.phase_index = 0
        self.phase_started = self.t
        self.src = self.source_ml * 1.03      # cell suspension, density ~1.03 g/mL
        self.waste = self.product = self.chamber = self.processed = 0.0
        self.clog = 0.0
        self.recovery = 100.0
        self.complete = False
        self.start_requested = False
        self.events.append((self.t, "start"))

    def _end_run(self, completed: bool) -> None:
        self.phase_index = -1
        self.complete = completed
        self.next_start = self.t + self.gap_s if self.repeat else None

    def step(self, dt: float) -> None:
        rng = self.rng
        if self.phase_index < 0 and (self.start_requested or (self.next_start is not None and self.t >= self.next_start)):
            self._start_run()
        if self.phase_index >= 0 and self.t - self.phase_started >= self.durations[self.phase]:
            if self.phase == "complete":
                self._end_run(completed=True)
            else:
                self.phase_index += 1
                self.phase_started = self.t
                self.events.append((self.t, self.phase))
        running = self.phase_index >= 0
        frac, rotor_sp, dest = _PROFILE[self.phase] if running else (0.0, 0, None)
        self.flow += (frac * self.flow_sp - self.flow) * min(1.0, dt / 5.0)
        self.rotor += (rotor_sp - self.rotor) * min(1.0, dt / 20.0)
        self.temp += (self.temp_sp - self.temp) * min(1.0, dt / 600.0)
        moved = self.flow / 60.0 * dt  # mL
        if dest == "load":
            moved = min(moved, self.src / 1.03)
            self.src -= moved * 1.03
            self.chamber += 0.05 * moved          # cells retained in the chamber
            self.waste += 0.95 * moved * 1.03
            # debris loads the line filter; occasional clumps cause pressure excursions
            self.clog += (0.0005 + (0.05 if rng.random() < 0.002 * dt else 0.0)) * moved / 10.0
        elif dest == "waste":
            self.waste += moved * 1.0
        elif dest == "chamber":
            self.chamber += moved
        elif dest == "product":
            moved = min(moved, self.chamber)
            self.chamber -= moved
            self.product += moved * 1.02
        if running:
            self.processed += moved
        self.clog = max(0.0, self.clog - 0.002 * dt * self.clog)   # clumps clear through the line
        self.pressure = 40.0 + 2.2 * self.flow * (1.0 + self.clog) if self.flow > 0.5 else 0.0
        alarm = self.pressure > self.press_limit
        if alarm and running:
            self.recovery -= 0.05 * dt                  # shear during an excursion costs cells
        if running and self.phase in ("wash", "concentrate"):
            self.recovery -= 0.001 * dt * frac
        self.recovery = max(self.recovery, 0.0)
        self.alarm = alarm
        self.t += dt

    def values(self) -> dict[str, float | int | bool]:
        return {
            "PHASE_CODE": self.phase_index + 1,
            "LOT_NO": self.lot_no,
            "FLOW": self.flow,
            "INLET_P": self.pressure,
            "ROTOR": int(round(self.rotor)),
            "TEMP": self.temp,
            "SRC_BAG": self.src,
            "WASTE_BAG": self.waste,
            "PRODUCT_BAG": self.product,
            "PROC_VOL": self.processed,
            "RECOVERY": self.recovery,
            "PHASE_TIME": int(min(self.t - self.phase_started, 65535)) if self.phase_index >= 0 else 0,
            "FLOW_SP": self.flow_sp,
            "PRESS_LIMIT": self.press_limit,
            "TEMP_SP": self.temp_sp,
            "START": False,
            "ABORT": False,
            "RUNNING": self.phase_index >= 0,
            "PRESS_ALARM": self.alarm,
            "COMPLETE": self.complete,
        }
