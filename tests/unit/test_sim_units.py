"""Cell-processing system and plant sensor models (pure)."""

from __future__ import annotations

import random

import pytest

from simulators.models.cps import PHASES, CellProcessor
from simulators.models.sensors import PlantSensor
from simulators.plant import CpsConfig, SensorConfig


def cps(**kw) -> CellProcessor:
    return CellProcessor.from_config(CpsConfig(**kw), random.Random(1))


def test_cps_runs_its_phases_in_order_and_conserves_liquid():
    unit = cps(repeat=False)
    phases, weights = [], []
    for _ in range(int(sum(unit.durations.values())) + 30):
        unit.step(1.0)
        v = unit.values()
        if v["PHASE_CODE"] and (not phases or phases[-1] != PHASES[v["PHASE_CODE"] - 1]):
            phases.append(PHASES[v["PHASE_CODE"] - 1])
        weights.append(v["SRC_BAG"])
    assert phases == list(PHASES)
    v = unit.values()
    assert v["PHASE_CODE"] == 0 and v["COMPLETE"] and not v["RUNNING"]
    assert v["LOT_NO"] == 1
    assert v["SRC_BAG"] < 0.05 * 1000 * 1.03, "the source bag was emptied"
    assert 0 < v["PRODUCT_BAG"] and 0 < v["RECOVERY"] <= 100
    assert all(a >= b for a, b in zip(weights[1:], weights[2:])), "the source bag never refills mid-run"


def test_cps_start_coil_and_pressure_alarm():
    unit = cps(repeat=False, start=1e9)       # no scheduled run
    unit.step(1.0)
    assert unit.values()["PHASE_CODE"] == 0
    unit.write("START", 1.0)
    unit.step(1.0)
    assert unit.values()["PHASE_CODE"] == 1
    unit.write("PRESS_LIMIT", 100.0)          # below the running pressure
    for _ in range(200):
        unit.step(1.0)
    assert unit.values()["PRESS_ALARM"] is True
    unit.write("ABORT", 1.0)
    assert unit.values()["RUNNING"] is False and unit.values()["COMPLETE"] is False


def test_sensor_drift_and_calibration_offset():
    s = PlantSensor.from_config(SensorConfig(name="RM01", kind="room", unit_id=10, drift_per_day=0.5,
                                             cal_offset=0.3), random.Random(1))
    ref = PlantSensor.from_config(SensorConfig(name="RM09", kind="room", unit_id=19), random.Random(1))
    for _ in range(4 * 24):
        s.step(3600.0)
        ref.step(3600.0)
    assert s.values()["TEMP"] - ref.values()["TEMP"] == pytest.approx(0.3 + 0.5 * 4)
    s.write("CAL_OFFSET", 2.3)                 # recalibration removes the error
    assert s.values()["TEMP"] == pytest.approx(ref.values()["TEMP"])


def test_incubator_door_openings_dip_co2():
    s = PlantSensor.from_config(SensorConfig(name="INC01", kind="incubator", unit_id=13), random.Random(3))
    lows = []
    for _ in range(3 * 86400 // 5):
        s.step(5.0)
        lows.append(s.values()["CO2"])
    assert min(lows) < 4.0 < max(lows) <= 5.0 + 1e-9


def test_balance_tare_and_container_changes():
    s = PlantSensor.from_config(SensorConfig(name="BAL01", kind="balance", unit_id=12), random.Random(2))
    for _ in range(4 * 3600):
        s.step(1.0)
    assert s.values()["WEIGHINGS"] >= 1
    s.write("TARE", 1.0)
    assert abs(s.values()["WEIGHT"]) < 1e-9
