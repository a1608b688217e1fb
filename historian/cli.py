"""The ``batchwire`` command: one entry point, a subcommand per component.

Each component owns its subcommands in its own ``cli`` module (``register(subparsers)``);
this module only dispatches, importing a component when its command is used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module providing register(subparsers)
_COMPONENTS = {
    "sim": "simulators.cli",
    "edge": "edge.cli",
    "historian": "historian.commands",
    "db": "historian.dbcli",
    "demo": "historian.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchwire",
        description="Real-time process historian and edge connector for biomanufacturing.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _COMPONENTS.items():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=max(level, logging.DEBUG) if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # third-party libraries warn about things the operator cannot act on (asyncua about the
    # simulator's unsecured endpoint, amqtt about every unexpected PUBACK): errors only,
    # unless asked for more
    for noisy in ("asyncua", "amqtt", "transitions", "pymodbus"):
        logging.getLogger(noisy).setLevel(
            logging.ERROR if args.verbose == 0 else logging.WARNING if args.verbose == 1 else logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
