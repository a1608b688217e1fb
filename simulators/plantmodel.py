"""The whole plant as pure code: units, simulated time, measurement noise, faults, catalog.

No sockets, no asyncio. The runner calls :meth:`PlantModel.advance_to` with the simulated time
that wall-clock time and the speed factor imply, then hands :meth:`PlantModel.readings` to the
servers. Everything random is drawn from generators seeded from the plant seed and the unit
name, so a plant with the same configuration and seed produces the same values.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from simulators import status as st
from simulators.catalog import Catalog, Signal
from simulators.faults import (SERVER_FAULTS, SIGNAL_FAULTS, ActiveFault, FaultError, FaultRecord, FaultSpec,
                               apply_signal_fault)
from simulators.models.bioreactor import Bioreactor
from simulators.models.recipe import BatchSequencer
from simulators.models.signals import SignalSpec
from simulators.plant import PlantConfig, PlantConfigError

Value = float | int | bool | str


class UnitModel(Protocol):
    """What the plant needs from a unit model."""

    name: str

    def step(self, dt: float) -> None: ...
    def values(self) -> dict[str, Value]: ...
    def write(self, signal: str, value: float) -> None: ...


@dataclass(frozen=True)
class UnitInfo:
    """How a unit is served."""

    name: str
    protocol: str
    specs: tuple[SignalSpec, ...]
    unit_id: int = 0
    noise_scale: float = 1.0
    phase_codes: dict[int, str] | None = None


@dataclass(frozen=True)
class Reading:
    value: Value
    status: int


def build_catalog(infos: list[UnitInfo], generation: int = 0) -> Catalog:
    """Catalog of every served signal. ``generation`` > 0 suffixes OPC UA node ids (``~N``)."""
    cat = Catalog()
    suffix = f"~{generation}" if generation else ""
    for info in infos:
        if info.protocol == "opcua":
            for s in info.specs:
                tag = f"{info.name}.{s.name}"
                cat.signals.append(Signal(info.name, tag, "opcua", s.datatype, s.eng_unit, s.description, s.low,
                                          s.high, node_id=f"s={tag}{suffix}", writable=s.writable))
            continue
        next_addr = {"holding": 0, "input": 0, "coil": 0, "discrete": 0}
        for s in info.specs:
            tag = f"{info.name}.{s.name}"
            addr = next_addr[s.table]
            width = 2 if s.encoding in ("float32", "int32", "uint32") else 1
            next_addr[s.table] = addr + width
            cat.signals.append(Signal(info.name, tag, "modbus", s.datatype, s.eng_unit, s.description, s.low, s.high,
                                      writable=s.writable, unit_id=info.unit_id, table=s.table, address=addr,
                                      encoding=s.encoding, word_order="big", scale=s.scale, offset=s.offset))
        if info.phase_codes is not None:
            cat.phase_codes[info.name] = dict(info.phase_codes)
    return cat


class PlantModel:
    """All units of a plant advanced together on one simulated clock.

    ``t`` is simulated seconds since ``start`` (a timezone-aware datetime).
    """

    def __init__(self, config: PlantConfig, start: datetime) -> None:
        """Build every unit; PlantConfigError when a scheduled fault does not fit this plant."""
        self.config = config
        self.start = start
        self.t = 0.0
        self.step_s = config.step
        self.units: dict[str, UnitModel] = {}
        self.infos: list[UnitInfo] = []
        self._batch_counter = 0
        self._build_units()
        self.generation = 0
        self.catalog = build_catalog(self.infos)
        self._specs = {f"{i.name}.{s.name}": (i, s) for i in self.infos for s in i.specs}
        self._meas_rng = {i.name: random.Random(f"{config.seed}:measure:{i.name}") for i in self.infos}
        self._fault_rng = random.Random(f"{config.seed}:faults")
        self.faults: dict[int, ActiveFault] = {}
        self.fault_log: list[FaultRecord] = []
        self._next_fault_id = 1
        for i, spec in enumerate(config.faults):
            try:
                self._check_target(spec)
            except FaultError as err:
                raise PlantConfigError(f"faults[{i}]: {err}") from err
        self._scheduled = sorted(((f.at or 0.0, i, f) for i, f in enumerate(config.faults)), key=lambda x: x[:2])
        # apply what is due at t=0 (first batch start, first phase) so the initial state is the scheduled one
        for unit in self.units.values():
            unit.step(0.0)

    # -- construction ----------------------------------------------------------------------
    def _next_batch_no(self) -> int:
        self._batch_counter += 1
        return self._batch_counter

    def _build_units(self) -> None:
        from simulators.models import bioreactor as brm
        from simulators.models import cps as cpsm
        from simulators.models import sensors as snm

        cfg = self.config
        for b in cfg.bioreactors:
            recipe = cfg.recipe(b.recipe)
            seq = BatchSequencer(recipe, self._next_batch_no, start_s=b.start, gap_s=b.gap, repeat=b.repeat,
                                 max_batches=b.max_batches)
            unit = Bioreactor(b.name, recipe, seq, random.Random(f"{cfg.seed}:process:{b.name}"),
                              batch_prefix=cfg.batch_prefix)
            self.units[b.name] = unit
            self.infos.append(UnitInfo(b.name, "opcua", brm.SIGNALS))
        for c in cfg.cps:
            unit = cpsm.CellProcessor.from_config(c, random.Random(f"{cfg.seed}:process:{c.name}"))
            self.units[c.name] = unit
            self.infos.append(UnitInfo(c.name, "modbus", cpsm.SIGNALS, c.unit_id, phase_codes=cpsm.PHASE_CODES))
        for s in cfg.sensors:
            unit = snm.PlantSensor.from_config(s, random.Random(f"{cfg.seed}:process:{s.name}"))
            self.units[s.name] = unit
            self.infos.append(UnitInfo(s.name, "modbus", unit.specs, s.unit_id, noise_scale=s.noise_scale))

    # -- time ------------------------------------------------------------------------------
    def sim_time(self, t: float | None = None) -> datetime:
        return self.start + timedelta(seconds=self.t if t is None else t)

    def advance_to(self, t_target: float) -> list[ActiveFault]:
        """Step every unit in fixed steps up to ``t_target``; return server-level faults that started.

        Scheduled faults start at the first step boundary at or after their ``at``.
        """
        started: list[ActiveFault] = []
        while self.t + self.step_s <= t_target + 1e-9:
            started.extend(self._due_faults())
            for unit in self.units.values():
                unit.step(self.step_s)
            self.t += self.step_s
            self._expire_faults()
        started.extend(self._due_faults())
        return [f for f in started if f.spec.kind in SERVER_FAULTS]

    def _due_faults(self) -> list[ActiveFault]:
        out = []
        while self._scheduled and self._scheduled[0][0] <= self.t + 1e-9:
            _, _, spec = self._scheduled.pop(0)
            out.append(self.start_fault(spec))
        return out

    def _expire_faults(self) -> None:
        for fid in [fid for fid, f in self.faults.items() if f.expired(self.t)]:
            self.clear_fault(fid, reason="duration elapsed")

    # -- faults ----------------------------------------------------------------------------
    def start_fault(self, spec: FaultSpec) -> ActiveFault:
        """Validate and start a fault now (simulated time ``t``); logs a ``start`` record."""
        self._check_target(spec)
        fid = self._next_fault_id
        self._next_fault_id += 1
        duration = spec.duration
        if spec.kind == "spike" and duration is None:
            duration = self.config.publish_interval * self.config.speed
        end = self.t + duration if duration is not None else None
        fault = ActiveFault(fid, spec, self.t, end)
        detail = spec.model_dump_json(exclude_defaults=True, exclude={"kind", "target", "at"})
        self.fault_log.append(FaultRecord(fid, self.sim_time(), spec.kind, spec.target, "start", detail))
        if spec.kind == "contamination":
            self.units[spec.target].contaminate(spec.magnitude or 1.0)  # type: ignore[attr-defined]
        # server faults (restart, dropped connections) are carried out by the runner, which
        # ends them with clear_fault() when done
        self.faults[fid] = fault
        return fault

    def clear_fault(self, fault_id: int, reason: str = "cleared") -> None:
        fault = self.faults.pop(fault_id, None)
        if fault is None:
            raise FaultError(f"no active fault with id {fault_id}")
        self.fault_log.append(FaultRecord(fault_id, self.sim_time(), fault.spec.kind, fault.spec.target, "end",
                                          reason))

    def _check_target(self, spec: FaultSpec) -> None:
        if spec.kind in SIGNAL_FAULTS:
            if spec.target not in self._specs:
                raise FaultError(f"fault {spec.kind}: unknown signal {spec.target!r}")
            _, sig = self._specs[spec.target]
            if spec.kind in ("spike", "drift", "noise") and sig.datatype not in ("float", "int"):
                raise FaultError(f"fault {spec.kind}: signal {spec.target!r} is not numeric")
        elif spec.kind in ("modbus_exception", "modbus_timeout"):
            info = self._info(spec.target)
            if info.protocol != "modbus":
                raise FaultError(f"fault {spec.kind}: {spec.target!r} is not a Modbus unit")
            if spec.kind == "modbus_exception" and spec.magnitude is not None and \
                    spec.magnitude not in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11):
                raise FaultError("fault modbus_exception: magnitude is an exception code (1-8, 10, 11)")
        elif spec.kind == "clock_skew":
            if self._info(spec.target).protocol != "opcua":
                raise FaultError("fault clock_skew: Modbus carries no timestamps; target an OPC UA unit")
        elif spec.kind == "contamination":
            if not isinstance(self.units.get(spec.target), Bioreactor):
                raise FaultError(f"fault contamination: {spec.target!r} is not a bioreactor")

    def _info(self, unit: str) -> UnitInfo:
        for info in self.infos:
            if info.name == unit:
                return info
        raise FaultError(f"unknown unit {unit!r}")

    def active(self, kind: str, target: str) -> ActiveFault | None:
        for f in self.faults.values():
            if f.spec.kind == kind and f.spec.target == target:
                return f
        return None

    def clock_offset(self, unit: str) -> float:
        """Seconds added to source timestamps of ``unit`` (clock-skew faults)."""
        return sum(float(f.spec.magnitude or 0.0) for f in self.faults.values()
                   if f.spec.kind == "clock_skew" and f.spec.target == unit)

    def modbus_fault(self, unit: str) -> ActiveFault | None:
        """The active exception/timeout fault of a Modbus unit, if any."""
        return self.active("modbus_timeout", unit) or self.active("modbus_exception", unit)

    # -- values ----------------------------------------------------------------------------
    def write(self, tag: str, value: float) -> None:
        """An operator write to a setpoint; ValueError for an unknown, read-only or out-of-range signal."""
        if tag not in self._specs:
            raise ValueError(f"unknown signal {tag!r}")
        info, spec = self._specs[tag]
        if not spec.writable:
            raise ValueError(f"signal {tag!r} is not writable")
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"signal {tag!r}: value must be a finite number")
        if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
            raise ValueError(f"signal {tag!r}: {value} outside {spec.low}..{spec.high}")
        self.units[info.name].write(spec.name, float(value))

    def readings(self) -> dict[str, Reading]:
        """What a client reads now: true values + measurement noise, clamped to range, then faults."""
        by_target: dict[str, list[ActiveFault]] = {}
        for f in self.faults.values():
            if f.spec.kind in SIGNAL_FAULTS:
                by_target.setdefault(f.spec.target, []).append(f)
        out: dict[str, Reading] = {}
        for info in self.infos:
            unit = self.units[info.name]
            values = unit.values()
            statuses = getattr(unit, "statuses", lambda: {})()
            rng = self._meas_rng[info.name]
            for spec in info.specs:
                tag = f"{info.name}.{spec.name}"
                value = values[spec.name]
                status = statuses.get(spec.name, st.GOOD)
                if spec.noise > 0 and spec.datatype == "float":
                    value = float(value) + rng.gauss(0.0, spec.noise * info.noise_scale)
                    if spec.low is not None and spec.high is not None:
                        value = min(max(value, float(spec.low)), float(spec.high))
                for fault in by_target.get(tag, ()):
                    value, status = apply_signal_fault(fault, value, status, self.t, self._fault_rng)
                out[tag] = Reading(value, status)
        return out

    def renumber(self) -> Catalog:
        """Give OPC UA variables new node ids (a server restart with a changed address space)."""
        self.generation += 1
        self.catalog = build_catalog(self.infos, self.generation)
        return self.catalog
