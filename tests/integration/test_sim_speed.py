"""Accelerated time: consistent simulated timestamps, and a whole batch at high speed."""

from __future__ import annotations

import pytest
from asyncua import Client

from simulators.catalog import NAMESPACE_URI
from simulators.plant import BioreactorConfig, PlantConfig, ServersConfig, default_plant, standard_recipe
from simulators.runner import PlantRunner
from tests.conftest import free_port


class Collector:
    def __init__(self) -> None:
        self.items: list[tuple[str, object, object]] = []

    def datachange_notification(self, node, val, data):
        dv = data.monitored_item.Value
        self.items.append((node.nodeid.Identifier, val, dv.SourceTimestamp))


async def subscribe(client: Client, tags: list[str], handler: Collector, interval_ms: int = 50):
    ns = await client.get_namespace_index(NAMESPACE_URI)
    sub = await client.create_subscription(interval_ms, handler)
    await sub.subscribe_data_change([client.get_node(f"ns={ns};s={t}") for t in tags], queuesize=1000)
    return sub


async def test_all_values_of_a_publish_share_one_simulated_timestamp():
    cfg = default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=0, speed=1000.0)
    cfg = cfg.model_copy(update={"publish_interval": 0.25})
    async with PlantRunner(cfg) as plant, Client(plant.opcua_endpoint) as client:
        got = Collector()
        await subscribe(client, ["BR01.TEMP", "BR01.PH"], got)
        await plant.wait_ticks(8)
        # each tick runs at least one publish interval after the previous: >= 250 simulated s
        assert plant.sim_seconds >= 250.0 * 6
        temp_ts = sorted({ts for tag, _, ts in got.items if tag == "BR01.TEMP"})
        ph_ts = sorted({ts for tag, _, ts in got.items if tag == "BR01.PH"})
        common = set(temp_ts) & set(ph_ts)
        assert len(common) >= 5, "both variables carry the same simulated instants"
        assert temp_ts == sorted(temp_ts) and len(temp_ts) == len(set(temp_ts))
        first, last = min(common), max(common)
        assert (last - first).total_seconds() >= 250.0 * 4
        start = plant.start.replace(tzinfo=None)
        assert all(ts.replace(tzinfo=None) >= start for ts in common)


@pytest.mark.slow
async def test_a_14_day_batch_completes_at_high_speed_with_a_growth_curve():
    cfg = PlantConfig(
        seed=5, speed=50000.0, step=10.0, publish_interval=0.1,
        servers=ServersConfig(opcua_port=free_port(), modbus_enabled=False, control_port=0),
        recipes=[standard_recipe()],
        bioreactors=[BioreactorConfig(name="BR01", recipe="CHO-FB-14D", repeat=False)])
    duration = cfg.recipe("CHO-FB-14D").duration_s
    async with PlantRunner(cfg) as plant, Client(plant.opcua_endpoint) as client:
        got = Collector()
        await subscribe(client, ["BR01.PHASE", "BR01.VCD", "BR01.VIAB"], got, interval_ms=20)
        await plant.wait_sim(duration + 3600.0, timeout=300)
        await plant.wait_ticks(3)
    phases = [v for tag, v, _ in got.items if tag == "BR01.PHASE"]
    order = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert order == ["setup", "inoculation", "batch_growth", "fed_batch", "harvest", ""]
    vcd = [(ts, v) for tag, v, ts in got.items if tag == "BR01.VCD"]
    peak_ts, peak = max(vcd, key=lambda x: x[1])
    assert peak > 8.0
    early = [v for ts, v in vcd if 0 < (ts - vcd[0][0]).total_seconds() < 86400 and v > 0]
    assert early and peak > 10 * min(early), "cells multiply more than tenfold"
    assert (peak_ts - vcd[0][0]).total_seconds() > 5 * 86400, "growth continues into the fed-batch"
