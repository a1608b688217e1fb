"""Plant files: which units exist, their recipes and schedules, ports, speed, seed and faults.

``PlantConfig.load(path)`` reads a TOML plant file and validates it once; every error names the
offending setting (``PlantConfigError``, a ``ValueError``). ``default_plant()`` is the small
built-in plant used when no file is given.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulators.duration import Duration
from simulators.faults import FaultSpec
from simulators.models.recipe import BIOREACTOR_PHASES, PhaseStep, Recipe

CPS_PHASES = ("prime", "load", "wash", "concentrate", "formulate", "fill", "complete")
SENSOR_KINDS = ("balance", "room", "diff_pressure", "incubator")
_UNIT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class PlantConfigError(ValueError):
    """The plant file is invalid; the message names the setting."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseConfig(_Model):
    name: Literal["setup", "inoculation", "batch_growth", "fed_batch", "harvest"]
    duration: Duration
    temp_sp: float = Field(36.8, ge=4, le=45)
    ph_sp: float = Field(7.05, ge=6.5, le=7.8)
    do_sp: float = Field(40.0, ge=0, le=100)
    agit_sp: float = Field(80.0, ge=0, le=400)
    air_flow_sp: float = Field(1.0, ge=0, le=20)
    feed_pct_per_day: float = Field(0.0, ge=0, le=50)


class RecipeConfig(_Model):
    name: str = Field(min_length=1)
    phases: list[PhaseConfig] = Field(min_length=2)
    media_volume_l: float = Field(90.0, gt=0, le=240)
    inoculum_l: float = Field(10.0, gt=0, le=100)
    inoculum_vcd: float = Field(5.0, gt=0, le=100)
    media_glc_g_l: float = Field(6.0, ge=0, le=30)
    media_gln_mm: float = Field(6.0, ge=0, le=30)
    media_temp_c: float = Field(25.0, ge=2, le=40)
    feed_glc_g_l: float = Field(100.0, ge=0, le=500)
    feed_gln_mm: float = Field(80.0, ge=0, le=500)
    sample_interval: Duration = 86400.0
    sample_ml: float = Field(10.0, ge=0, le=1000)
    sample_delay: Duration = 1800.0
    bio_time_scale: float = Field(1.0, gt=0, le=100000)

    @field_validator("phases")
    @classmethod
    def _phase_order(cls, phases: list[PhaseConfig]) -> list[PhaseConfig]:
        names = [p.name for p in phases]
        order = [BIOREACTOR_PHASES.index(n) for n in names]
        if order != sorted(set(order)):
            raise ValueError(f"phases must be unique and in the order {', '.join(BIOREACTOR_PHASES)}; got {names}")
        if names[:2] != ["setup", "inoculation"]:
            raise ValueError("a recipe starts with 'setup' then 'inoculation'")
        return phases

    def to_recipe(self) -> Recipe:
        steps = tuple(PhaseStep(p.name, p.duration, p.temp_sp, p.ph_sp, p.do_sp, p.agit_sp, p.air_flow_sp,
                                p.feed_pct_per_day) for p in self.phases)
        return Recipe(self.name, steps, self.media_volume_l, self.inoculum_l, self.inoculum_vcd,
                      media_glc_g_l=self.media_glc_g_l, media_gln_mm=self.media_gln_mm,
                      media_temp_c=self.media_temp_c, feed_glc_g_l=self.feed_glc_g_l, feed_gln_mm=self.feed_gln_mm,
                      sample_interval_s=self.sample_interval, sample_ml=self.sample_ml,
                      sample_delay_s=self.sample_delay, bio_time_scale=self.bio_time_scale)


class BioreactorConfig(_Model):
    name: str
    recipe: str
    start: Duration = 0.0          # first batch starts this long after plant start
    gap: Duration = 60.0           # idle time between batches
    repeat: bool = True
    max_batches: int = Field(0, ge=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"BR\d{2,}", v):
            raise ValueError(f"bioreactor names are BR01..BRnn, got {v!r}")
        return v


class CpsConfig(_Model):
    name: str = "CPS01"
    unit_id: int = Field(1, ge=1, le=247)
    phase_durations: dict[str, Duration] = Field(default_factory=lambda: {
        "prime": 120.0, "load": 300.0, "wash": 600.0, "concentrate": 300.0, "formulate": 180.0,
        "fill": 240.0, "complete": 60.0})
    start: Duration = 0.0
    gap: Duration = 120.0
    repeat: bool = True
    lot_prefix: str = "C-"
    source_volume_ml: float = Field(1000.0, gt=0, le=20000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"CPS\d{2,}", v):
            raise ValueError(f"cell-processing system names are CPS01..CPSnn, got {v!r}")
        return v

    @field_validator("phase_durations")
    @classmethod
    def _phases(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(CPS_PHASES):
            raise ValueError(f"phase_durations needs exactly the phases {', '.join(CPS_PHASES)}")
        return {p: v[p] for p in CPS_PHASES}


class SensorConfig(_Model):
    name: str
    kind: Literal["balance", "room", "diff_pressure", "incubator"]
    unit_id: int = Field(ge=1, le=247)
    noise_scale: float = Field(1.0, ge=0, le=100)
    drift_per_day: float = 0.0     # engineering units per simulated day on the main signal
    cal_offset: float = 0.0        # initial calibration offset on the main signal

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _UNIT_NAME.match(v):
            raise ValueError(f"unit names are upper case letters/digits, got {v!r}")
        return v


class ServersConfig(_Model):
    host: str = "127.0.0.1"
    opcua_port: int = Field(4840, ge=1, le=65535)
    modbus_port: int = Field(5020, ge=1, le=65535)
    control_port: int = Field(4841, ge=0, le=65535)   # 0: any free port (printed at start)
    modbus_enabled: bool = True


class PlantConfig(_Model):
    """A whole simulated plant (see ``deploy/examples/plant.toml`` for every setting)."""

    name: str = "batchwire-sim"
    seed: int = 1
    speed: float = Field(1.0, gt=0, le=100000)
    start: datetime | None = None        # simulated time at start; default: wall clock at start
    step: Duration = 1.0                 # model integration step (simulated seconds)
    publish_interval: float = Field(1.0, gt=0, le=60)   # wall seconds between server updates
    batch_prefix: str = "B-"
    servers: ServersConfig = Field(default_factory=ServersConfig)
    recipes: list[RecipeConfig] = Field(default_factory=list)
    bioreactors: list[BioreactorConfig] = Field(default_factory=list)
    cps: list[CpsConfig] = Field(default_factory=list)
    sensors: list[SensorConfig] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)

    @field_validator("step")
    @classmethod
    def _step(cls, v: float) -> float:
        if not 0.01 <= v <= 60:
            raise ValueError("step must be between 0.01 and 60 simulated seconds")
        return v

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v

    @model_validator(mode="after")
    def _references(self) -> "PlantConfig":
        recipes = {r.name for r in self.recipes}
        for i, br in enumerate(self.bioreactors):
            if br.recipe not in recipes:
                raise ValueError(f"bioreactors[{i}].recipe: unknown recipe {br.recipe!r} (have {sorted(recipes)})")
        names = [u.name for u in self.bioreactors] + [c.name for c in self.cps] + [s.name for s in self.sensors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"unit names must be unique: {dup}")
        ids = [c.unit_id for c in self.cps] + [s.unit_id for s in self.sensors]
        dup_ids = sorted({i for i in ids if ids.count(i) > 1})
        if dup_ids:
            raise ValueError(f"Modbus unit_id values must be unique: {dup_ids}")
        return self

    def recipe(self, name: str) -> Recipe:
        for r in self.recipes:
            if r.name == name:
                return r.to_recipe()
        raise KeyError(name)

    @classmethod
    def load(cls, path: str | Path) -> "PlantConfig":
        """Read and validate a TOML plant file; PlantConfigError names the bad setting."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as err:
            raise PlantConfigError(f"{p}: cannot read plant file: {err}") from err
        except tomllib.TOMLDecodeError as err:
            raise PlantConfigError(f"{p}: not valid TOML: {err}") from err
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: dict, source: str = "plant") -> "PlantConfig":
        # plant files use [[recipe]], [[bioreactor]], [[sensor]], [[fault]] (singular tables)
        renamed = dict(data)
        for single, plural in (("recipe", "recipes"), ("bioreactor", "bioreactors"), ("sensor", "sensors"),
                               ("fault", "faults")):
            if single in renamed:
                if plural in renamed:
                    raise PlantConfigError(f"{source}: use either [[{single}]] or {plural}, not both")
                renamed[plural] = renamed.pop(single)
        if isinstance(renamed.get("cps"), dict):
            renamed["cps"] = [renamed["cps"]]
        plant = renamed.pop("plant", None)
        if isinstance(plant, dict):
            for k, v in plant.items():
                renamed.setdefault(k, v)
        try:
            return cls.model_validate(renamed)
        except ValidationError as err:
            raise PlantConfigError(f"{source}: {_describe(err)}") from err


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in e["loc"]).replace(".[", "[")
        parts.append(f"{loc or 'plant'}: {e['msg']}")
    return "; ".join(parts)


def demo_recipe(name: str = "CHO-FB-DEMO") -> RecipeConfig:
    """A ten-minute recipe with compressed biology, for demonstrations at speed 1."""
    return RecipeConfig(
        name=name, bio_time_scale=600.0, sample_interval=120.0, sample_delay=20.0, media_temp_c=36.0,
        phases=[
            PhaseConfig(name="setup", duration=90.0, temp_sp=36.8, ph_sp=7.1, do_sp=40, agit_sp=80),
            PhaseConfig(name="inoculation", duration=30.0, temp_sp=36.8, ph_sp=7.1, do_sp=40, agit_sp=80),
            PhaseConfig(name="batch_growth", duration=180.0, temp_sp=36.8, ph_sp=7.05, do_sp=40, agit_sp=80),
            PhaseConfig(name="fed_batch", duration=240.0, temp_sp=35.0, ph_sp=7.0, do_sp=40, agit_sp=100,
                        feed_pct_per_day=4.0),
            PhaseConfig(name="harvest", duration=60.0, temp_sp=20.0, ph_sp=7.0, do_sp=0, agit_sp=50,
                        air_flow_sp=0.5),
        ])


def standard_recipe(name: str = "CHO-FB-14D") -> RecipeConfig:
    """A 14-day CHO fed-batch: batch growth 3 days, fed-batch with temperature shift."""
    return RecipeConfig(
        name=name,
        phases=[
            PhaseConfig(name="setup", duration="6h", temp_sp=36.8, ph_sp=7.1, do_sp=40, agit_sp=80),
            PhaseConfig(name="inoculation", duration="2h", temp_sp=36.8, ph_sp=7.1, do_sp=40, agit_sp=80),
            PhaseConfig(name="batch_growth", duration="3d", temp_sp=36.8, ph_sp=7.05, do_sp=40, agit_sp=80),
            PhaseConfig(name="fed_batch", duration="11d", temp_sp=35.0, ph_sp=7.0, do_sp=40, agit_sp=100,
                        feed_pct_per_day=4.0),
            PhaseConfig(name="harvest", duration="6h", temp_sp=20.0, ph_sp=7.0, do_sp=0, agit_sp=50,
                        air_flow_sp=0.5),
        ])


def default_plant(opcua_port: int = 4840, modbus_port: int = 5020, control_port: int = 4841,
                  seed: int = 1, speed: float = 1.0) -> PlantConfig:
    """Small built-in plant: BR01 on the demo recipe, CPS01 and four sensors."""
    return PlantConfig(
        name="batchwire-default", seed=seed, speed=speed,
        servers=ServersConfig(opcua_port=opcua_port, modbus_port=modbus_port, control_port=control_port),
        recipes=[demo_recipe()],
        bioreactors=[BioreactorConfig(name="BR01", recipe="CHO-FB-DEMO", gap=30.0)],
        cps=[CpsConfig()],
        sensors=[
            SensorConfig(name="RM01", kind="room", unit_id=10),
            SensorConfig(name="DP01", kind="diff_pressure", unit_id=11),
            SensorConfig(name="BAL01", kind="balance", unit_id=12),
            SensorConfig(name="INC01", kind="incubator", unit_id=13),
        ],
    )
