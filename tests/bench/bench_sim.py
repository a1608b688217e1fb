"""Simulator throughput: >= 5,000 OPC UA variables changing every second and 50 Modbus devices
polled at 1 Hz, served by one process at real time.

Run: ``.venv/bin/python -m tests.bench.bench_sim [--bioreactors 280] [--seconds 30]``
or, for a plant file at its own speed (e.g. 1000x):
``.venv/bin/python -m tests.bench.bench_sim --plant deploy/examples/plant.toml``

The plant runs in this process; the clients (asyncua subscription clients, one pymodbus poller
reading the 50 unit ids one after the other) run in a child process so they do not share the
plant's event loop.
Every figure is printed as a ratio of achieved to requested rate measured over the same
window (1.00 = keeping up).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time

from simulators.plant import (BioreactorConfig, CpsConfig, PlantConfig, SensorConfig, ServersConfig,
                              standard_recipe)
from simulators.runner import PlantRunner
from tests.conftest import free_port

SENSOR_KINDS = ("room", "diff_pressure", "balance", "incubator")


def bench_plant(bioreactors: int, modbus_devices: int) -> PlantConfig:
    return PlantConfig(
        name="bench", seed=1, speed=1.0, step=1.0, publish_interval=1.0,
        servers=ServersConfig(opcua_port=free_port(), modbus_port=free_port(), control_port=0),
        recipes=[standard_recipe()],
        # start every reactor in its growth phase so all process values move
        bioreactors=[BioreactorConfig(name=f"BR{i + 1:03d}", recipe="CHO-FB-14D", start=0) for i in
                     range(bioreactors)],
        cps=[CpsConfig(name="CPS01", unit_id=1)],
        sensors=[SensorConfig(name=f"S{i:03d}", kind=SENSOR_KINDS[i % 4], unit_id=10 + i)
                 for i in range(modbus_devices - 1)],
    )


def _clients(endpoint: str, node_ids: list[str], per_client: int, modbus: tuple[str, int, list[tuple[int, int]]],
             seconds: float, ready, out) -> None:
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)8.0f %(name)s %(message)s")
    asyncio.run(_client_main(endpoint, node_ids, per_client, modbus, seconds, ready, out))


async def _client_main(endpoint, node_ids, per_client, modbus, seconds, ready, out) -> None:
    from asyncua import Client, ua
    from pymodbus.client import AsyncModbusTcpClient

    changes = 0

    class Handler:
        def datachange_notification(self, node, val, data):
            nonlocal changes
            changes += 1

        def status_change_notification(self, status):
            pass

    # one client per ``per_client`` variables (default: a single client; measured here, several
    # sessions received fewer changes in total than one)
    clients, subs = [], []
    for i in range(0, len(node_ids), per_client):
        # the health check must outlast the server's publish spikes, or the session is dropped
        client = Client(endpoint, timeout=30, watchdog_intervall=30)
        await client.connect()
        ns = await client.get_namespace_index("urn:batchwire:sim")
        sub = await client.create_subscription(
            ua.CreateSubscriptionParameters(RequestedPublishingInterval=1000, RequestedMaxKeepAliveCount=10,
                                            RequestedLifetimeCount=100, MaxNotificationsPerPublish=0), Handler())
        await sub.subscribe_data_change([client.get_node(f"ns={ns};{nid}") for nid in node_ids[i:i + per_client]],
                                        queuesize=10)
        clients.append(client)
        subs.append(sub)
    host, port, devices = modbus
    mb = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
    await mb.connect()
    polls = errors = 0
    await asyncio.sleep(3)          # let initial values settle
    changes = 0
    ready.set()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    next_poll = t0
    while time.monotonic() - t0 < seconds:
        for uid, n in devices:          # one request at a time, as a gateway poller does
            try:
                r = await mb.read_input_registers(0, count=n, device_id=uid)
            except Exception:  # noqa: BLE001 - counted, the bench goes on
                errors += 1
                continue
            if r.isError():
                errors += 1
            else:
                polls += 1
        next_poll += 1.0
        await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
    elapsed = time.monotonic() - t0
    out.put({"changes": changes, "polls": polls, "errors": errors, "elapsed": elapsed,
             "client_cpu": (time.process_time() - cpu0) / elapsed})
    mb.close()
    for sub in subs:
        await sub.delete()
    for client in clients:
        await client.disconnect()


async def main(bioreactors: int, modbus_devices: int, seconds: float, plant_file: str | None = None,
               subscribe: int | None = None, per_client: int = 10000) -> None:
    if plant_file:
        cfg = PlantConfig.load(plant_file)
        cfg = cfg.model_copy(update={"servers": ServersConfig(opcua_port=free_port(), modbus_port=free_port(),
                                                              control_port=0)})
    else:
        cfg = bench_plant(bioreactors, modbus_devices)
    t_start = time.monotonic()
    async with PlantRunner(cfg) as plant:
        startup = time.monotonic() - t_start
        await plant.wait_ticks(3, timeout=120)
        # the variables that change every second: those whose value differs between two publishes
        before = dict(plant.readings_now)
        await plant.wait_ticks(1)
        after = plant.readings_now
        changing = [s.node_id for s in plant.catalog.opcua() if before[s.name] != after[s.name]]
        node_ids = changing[:subscribe] if subscribe else changing
        devices = []
        for unit in plant.catalog.units():
            sigs = [s for s in plant.catalog.for_unit(unit) if s.protocol == "modbus" and s.table == "input"]
            if sigs:
                devices.append((sigs[0].unit_id, max(s.address + s.register_count for s in sigs)))
        print(f"plant: {len(plant.catalog.opcua())} OPC UA variables ({len(node_ids)} change every second), "
              f"{len(devices)} Modbus devices; start-up {startup:.1f} s")
        ctx = mp.get_context("spawn")
        ready, out = ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=_clients, args=(plant.opcua_endpoint, node_ids, per_client,
                                                  (plant.modbus_host, plant.modbus_port, devices), seconds,
                                                  ready, out))
        proc.start()
        while not ready.is_set():
            await asyncio.sleep(0.1)
        await plant.wait_ticks(1, timeout=60)   # measure from a tick boundary
        sim0, wall0, ticks0, writes0 = plant.sim_seconds, time.monotonic(), plant.ticks, plant.opcua_writes
        subscribed = [s.name for s in plant.catalog.opcua() if s.node_id in set(node_ids)]
        counts0 = sum(plant.opcua_server.write_counts[t] for t in subscribed)
        publish_times, lags = [], []
        last = (wall0, sim0, ticks0, writes0)
        while proc.is_alive() and out.empty():
            await plant.wait_ticks(1, timeout=60)
            now = time.monotonic()
            publish_times.append(plant.last_publish_s)
            # how far the published simulated time trails what the wall clock asks for
            lags.append((now - plant._wall0) * cfg.speed - plant.sim_seconds)
            last = (now, plant.sim_seconds, plant.ticks, plant.opcua_writes)
        sent = sum(plant.opcua_server.write_counts[t] for t in subscribed) - counts0
        result = await asyncio.get_running_loop().run_in_executor(None, out.get)
        wall = last[0] - wall0
        sim = last[1] - sim0
        ticks = last[2] - ticks0
        writes = last[3] - writes0
        proc.join()
    requested_updates = len(changing) * wall
    print(f"window: {wall:.1f} s wall")
    print(f"simulated time / requested (speed {cfg.speed:g}x):     {sim / (wall * cfg.speed):.3f}")
    print(f"publish cycles / requested (1 per s):            {ticks / wall:.3f}")
    print(f"OPC UA values written / requested ({len(changing)}/s):    {writes / requested_updates:.3f}")
    print(f"OPC UA changes received / requested ({len(node_ids)}/s):  "
          f"{result['changes'] / (len(node_ids) * result['elapsed']):.3f}")
    print(f"OPC UA changes received / written for the subscribed variables: {result['changes'] / sent:.3f}")
    print(f"Modbus polls answered / requested ({len(devices)}/s):      "
          f"{result['polls'] / (len(devices) * result['elapsed']):.3f}  (errors: {result['errors']})")
    print(f"client process CPU use: {result['client_cpu']:.2f} of one core")
    lags.sort()
    print(f"simulated-time lag at publish: median {lags[len(lags) // 2]:.2f} s, max {lags[-1]:.2f} s "
          f"(one model step is {cfg.step:g} s)")
    publish_times.sort()
    if publish_times:
        print(f"publish cycle duration: median {publish_times[len(publish_times) // 2]:.3f} s, "
              f"max {publish_times[-1]:.3f} s (budget 1.000 s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bioreactors", type=int, default=280)
    ap.add_argument("--modbus-devices", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--plant", help="benchmark this plant file (at its speed) instead of the synthetic plant")
    ap.add_argument("--subscribe", type=int, help="subscribe to only this many of the changing variables")
    ap.add_argument("--per-client", type=int, default=10000, help="variables per subscription client")
    a = ap.parse_args()
    asyncio.run(main(a.bioreactors, a.modbus_devices, a.seconds, a.plant, a.subscribe, a.per_client))
