"""Plant sensors: balances, room temperature/humidity, differential pressure, incubator CO2.

Each sensor reads ``true value + calibration error + drift - operator correction``; measurement
noise is added by the plant from the signal definitions. The writable ``CAL_OFFSET`` register is
the operator's correction (a recalibration writes the observed error into it).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulators.models.signals import SignalSpec

DAY = 86400.0


def _specs(kind: str) -> tuple[SignalSpec, ...]:
    cal = SignalSpec("CAL_OFFSET", "float", None, "Calibration correction subtracted from the main reading",
                     -100, 100, writable=True, table="holding", encoding="float32", kind="setpoint")
    if kind == "room":
        return (
            SignalSpec("TEMP", "float", "degC", "Room temperature", -20, 60, noise=0.02, encoding="int16", scale=0.01),
            SignalSpec("RH", "float", "%", "Room relative humidity", 0, 100, noise=0.2, encoding="uint16", scale=0.01),
            SignalSpec("ALARM", "bool", None, "Temperature outside 18-25 degC", table="discrete", encoding="bool",
                       kind="state"),
            cal,
        )
    if kind == "diff_pressure":
        return (
            SignalSpec("DP", "float", "Pa", "Differential pressure to the adjacent room", -100, 100, noise=0.2,
                       encoding="int16", scale=0.1),
            SignalSpec("ALARM", "bool", None, "Pressure cascade lost (below 10 Pa)", table="discrete",
                       encoding="bool", kind="state"),
            SignalSpec("DOOR", "bool", None, "Door open", table="discrete", encoding="bool", kind="state"),
            cal,
        )
    if kind == "balance":
        return (
            SignalSpec("WEIGHT", "float", "kg", "Net weight", -1, 60, noise=0.002, encoding="float32"),
            SignalSpec("WEIGHINGS", "int", None, "Container changes since start", 0, 4294967295,
                       encoding="uint32", kind="state"),
            SignalSpec("STABLE", "bool", None, "Weight stable", table="discrete", encoding="bool", kind="state"),
            SignalSpec("TARE", "bool", None, "Write 1 to tare (zero the net weight)", writable=True, table="coil",
                       encoding="bool", kind="setpoint"),
            cal,
        )
    if kind == "incubator":
        return (
            SignalSpec("CO2", "float", "%", "Incubator CO2 concentration", 0, 20, noise=0.02, encoding="uint16",
                       scale=0.01),
            SignalSpec("TEMP", "float", "degC", "Incubator temperature", 0, 50, noise=0.02, encoding="int16",
                       scale=0.01),
            SignalSpec("DOOR", "bool", None, "Door open", table="discrete", encoding="bool", kind="state"),
            cal,
        )
    raise ValueError(f"unknown sensor kind {kind!r}")


MAIN_SIGNAL = {"room": "TEMP", "diff_pressure": "DP", "balance": "WEIGHT", "incubator": "CO2"}


@dataclass
class PlantSensor:
    """One Modbus sensor device of a given ``kind``."""

    name: str
    kind: str
    rng: random.Random
    drift_per_day: float = 0.0
    cal_error: float = 0.0
    specs: tuple[SignalSpec, ...] = ()
    t: float = 0.0
    correction: float = 0.0
    door_until: float = -1.0
    co2: float = 5.0
    itemp: float = 37.0
    gross: float = 0.0
    tare: float = 0.0
    weighings: int = 0
    fill_rate: float = 0.0
    state: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg, rng: random.Random) -> "PlantSensor":
        unit = cls(cfg.name, cfg.kind, rng, cfg.drift_per_day, cfg.cal_offset, _specs(cfg.kind))
        unit.fill_rate = 5.0 / 3600.0 * (0.8 + 0.4 * rng.random())   # kg/s into the container
        return unit

    def write(self, signal: str, value: float) -> None:
        if signal == "CAL_OFFSET":
            self.correction = float(value)
        elif signal == "TARE" and self.kind == "balance":
            if value:
                self.tare = self.gross
        else:
            raise KeyError(f"{self.name}.{signal} is not writable")

    def step(self, dt: float) -> None:
        self.t += dt
        rng = self.rng
        door_rate = {"diff_pressure": 1 / 3600.0, "incubator": 1 / 7200.0}.get(self.kind, 0.0)
        if self.t >= self.door_until and rng.random() < door_rate * dt:
            self.door_until = self.t + 15.0 + 30.0 * rng.random()
        door = self.t < self.door_until
        if self.kind == "incubator":
            co2_target, t_target, tau = (0.5, 30.0, 60.0) if door else (5.0, 37.0, 300.0)
            self.co2 += (co2_target - self.co2) * min(1.0, dt / tau)
            self.itemp += (t_target - self.itemp) * min(1.0, dt / (tau * 4))
        if self.kind == "balance":
            self.gross += self.fill_rate * dt
            if self.gross - self.tare > 10.0:       # container full: swapped for an empty one
                self.gross = self.tare + 0.35        # empty bag on the balance
                self.weighings += 1

    def _offset(self) -> float:
        return self.cal_error + self.drift_per_day * self.t / DAY - self.correction

    def values(self) -> dict[str, float | int | bool]:
        t = self.t
        door = t < self.door_until
        off = self._offset()
        diurnal = math.sin(2 * math.pi * (t / DAY - 0.25))
        if self.kind == "room":
            temp = 20.5 + 0.6 * diurnal + off
            return {"TEMP": temp, "RH": 45.0 - 4.0 * diurnal, "ALARM": not 18.0 <= temp <= 25.0,
                    "CAL_OFFSET": self.correction}
        if self.kind == "diff_pressure":
            dp = (2.0 if door else 15.0 + 0.5 * diurnal) + off
            return {"DP": dp, "ALARM": dp < 10.0, "DOOR": door, "CAL_OFFSET": self.correction}
        if self.kind == "balance":
            return {"WEIGHT": self.gross - self.tare + off, "WEIGHINGS": self.weighings,
                    "STABLE": self.fill_rate < 0.01, "TARE": False, "CAL_OFFSET": self.correction}
        return {"CO2": self.co2 + off, "TEMP": self.itemp, "DOOR": door, "CAL_OFFSET": self.correction}
