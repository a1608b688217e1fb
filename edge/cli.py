"""``batchwire edge``: run the edge agent or check its configuration.

    batchwire edge run -c edge.toml      run until interrupted
    batchwire edge check -c edge.toml    validate the configuration and exit

An invalid configuration ends either command with exit code 2 and a message naming the
file and the setting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from edge.config import ConfigError, EdgeConfig, load_config

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def register(subparsers) -> None:
    edge = subparsers.add_parser("edge", help="edge agent: acquire, buffer durably, publish over MQTT")
    sub = edge.add_subparsers(dest="edge_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the edge agent until interrupted")
    run.add_argument("-c", "--config", required=True, help="edge configuration (TOML)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate an edge configuration and exit")
    check.add_argument("-c", "--config", required=True, help="edge configuration (TOML)")
    check.set_defaults(func=cmd_check)


def _load(path: str) -> EdgeConfig | None:
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"invalid edge configuration: {err}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    n_tags = sum(len(s.tags) for s in (*config.opcua, *config.modbus))
    print(f"{args.config}: ok - edge {config.edge.id!r} at site {config.edge.site!r}, "
          f"{len(config.opcua)} OPC UA and {len(config.modbus)} Modbus sources, {n_tags} tags, "
          f"outbox in {config.edge.outbox_dir}, broker {config.mqtt.host}:{config.mqtt.port}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from edge.agent import run_agent
    from edge.errors import EdgeError

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread / platform without signals: Ctrl-C raises instead
        await run_agent(config, stop=stop)

    try:
        asyncio.run(main())
    except EdgeError as err:
        print(f"edge agent stopped: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m edge.cli run -c edge.toml``)."""
    parser = argparse.ArgumentParser(prog="batchwire")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["edge", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
