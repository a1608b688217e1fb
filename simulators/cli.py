"""``batchwire sim``: run the simulated plant, trigger faults in a running one, regenerate the docs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from simulators.plant import PlantConfig, PlantConfigError, default_plant

FAULT_KINDS = ("opcua_restart", "drop_connections", "frozen", "spike", "drift", "noise", "bad_quality",
               "sensor_failure", "modbus_exception", "modbus_timeout", "clock_skew", "contamination")


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="simulated plant (bioreactors, cell processing, sensors)")
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run a plant until interrupted; prints endpoints and the register map")
    run.add_argument("-c", "--config", help="plant file (TOML); default: the small built-in plant")
    run.add_argument("--speed", type=float, help="simulated seconds per wall second (overrides the file)")
    run.add_argument("--seed", type=int, help="random seed (overrides the file)")
    run.add_argument("--opcua-port", type=int, help="OPC UA port (overrides the file)")
    run.add_argument("--modbus-port", type=int, help="Modbus TCP port (overrides the file)")
    run.add_argument("--control-port", type=int, help="control port, 0 for any free port (overrides the file)")
    run.set_defaults(func=_run)

    fault = sub.add_parser("fault", help="trigger (or clear, or list) faults in a running plant")
    fault.add_argument("kind", nargs="?", choices=FAULT_KINDS, help="fault kind")
    fault.add_argument("target", nargs="?", default="", help="tag (BR01.TEMP), unit (RM01) or protocol")
    fault.add_argument("--magnitude", type=float, help="size: spike/drift(per h)/noise sigma/skew s/exception code")
    fault.add_argument("--duration", help="simulated duration, e.g. 90s, 5m (default: until cleared)")
    fault.add_argument("--status", help="StatusCode name for bad_quality (default Bad)")
    fault.add_argument("--renumber", action="store_true", help="opcua_restart: change node ids")
    fault.add_argument("--downtime", type=float, help="opcua_restart: wall seconds offline (default 2)")
    fault.add_argument("--clear", type=int, metavar="FAULT_ID", help="end an active fault")
    fault.add_argument("--list", action="store_true", help="print plant status and the fault log")
    fault.add_argument("--host", default="127.0.0.1", help="control host (default 127.0.0.1)")
    fault.add_argument("--port", type=int, default=4841, help="control port (printed by sim run; default 4841)")
    fault.set_defaults(func=_fault)

    docs = sub.add_parser("docs", help="print (or --write) the generated node list and register map")
    docs.add_argument("--write", action="store_true", help="update docs/simulator.md in place")
    docs.set_defaults(func=_docs)


def load_config(args: argparse.Namespace) -> PlantConfig:
    cfg = PlantConfig.load(args.config) if args.config else default_plant()
    updates: dict[str, Any] = {}
    if args.speed is not None:
        updates["speed"] = args.speed
    if args.seed is not None:
        updates["seed"] = args.seed
    servers: dict[str, Any] = {}
    for opt, key in (("opcua_port", "opcua_port"), ("modbus_port", "modbus_port"), ("control_port", "control_port")):
        if getattr(args, opt) is not None:
            servers[key] = getattr(args, opt)
    data = cfg.model_dump()
    data.update(updates)
    data["servers"].update(servers)
    return PlantConfig.from_dict(data, source=args.config or "built-in plant")


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args)
    except PlantConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(cfg))
    except KeyboardInterrupt:
        pass
    except PlantConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


async def _serve(cfg: PlantConfig) -> None:
    from simulators.docs import register_map_text
    from simulators.runner import PlantRunner

    # the unsecured endpoint is deliberate (see docs/simulator.md): do not warn about it
    logging.getLogger("asyncua.server.server").setLevel(logging.ERROR)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with PlantRunner(cfg) as plant:
        units = plant.catalog.units()
        print(f"batchwire simulated plant {cfg.name!r}: {len(units)} units, {len(plant.catalog)} signals, "
              f"speed {cfg.speed:g}x, seed {cfg.seed}, simulated start {plant.start.isoformat()}")
        if plant.opcua_endpoint:
            print(f"OPC UA   {plant.opcua_endpoint}  (namespace urn:batchwire:sim, no security)")
        if plant.modbus_port:
            print(f"Modbus   tcp://{plant.modbus_host}:{plant.modbus_port}")
        print(f"control  127.0.0.1:{plant.control_port}  (batchwire sim fault --port {plant.control_port} ...)")
        text = register_map_text(plant.catalog)
        if text:
            print("Modbus register map (0-based addresses; 32-bit values high word first):")
            print(text)
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("stopped.")


def _fault(args: argparse.Namespace) -> int:
    from simulators.control import request
    from simulators.duration import parse_duration

    if args.list:
        payloads = [{"op": "status"}, {"op": "log"}]
    elif args.clear is not None:
        payloads = [{"op": "clear", "fault_id": args.clear}]
    elif args.kind:
        spec: dict[str, Any] = {"kind": args.kind, "target": args.target}
        if args.magnitude is not None:
            spec["magnitude"] = args.magnitude
        if args.duration is not None:
            try:
                spec["duration"] = parse_duration(args.duration)
            except ValueError as err:
                print(f"error: --duration: {err}", file=sys.stderr)
                return 2
        if args.status:
            spec["status"] = args.status
        if args.renumber:
            spec["renumber"] = True
        if args.downtime is not None:
            spec["downtime"] = args.downtime
        payloads = [{"op": "fault", "spec": spec}]
    else:
        print("error: give a fault kind, --clear ID or --list", file=sys.stderr)
        return 2
    try:
        for payload in payloads:
            answer = asyncio.run(request(args.host, args.port, payload))
            print(json.dumps(answer, indent=2))
            if not answer.get("ok"):
                return 1
    except (OSError, TimeoutError) as err:
        print(f"error: no plant control port at {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


def _docs(args: argparse.Namespace) -> int:
    from simulators.docs import DOC_PATH, render_reference, splice

    generated = render_reference()
    if not args.write:
        print(generated)
        return 0
    DOC_PATH.write_text(splice(DOC_PATH.read_text(encoding="utf-8"), generated), encoding="utf-8")
    print(f"updated {DOC_PATH}")
    return 0
