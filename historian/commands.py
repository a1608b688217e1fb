"""``batchwire historian run|ingest|api``: the historian's long-running processes.

``run`` is ingest and API in one process (the simple deployment); ``ingest`` and ``api``
run them separately so ingest can be scaled out on a shared subscription and the API
served from replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from .service import ServiceError, run_service, serve_api

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("historian", help="run the historian (ingest and/or HTTP API)",
                            description=__doc__)
    hsub = parser.add_subparsers(dest="historian_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser, *, ingest: bool, api: bool) -> None:
        p.add_argument("--db", default=os.environ.get("BATCHWIRE_DB"),
                       help="PostgreSQL URL, e.g. postgresql://user@host/db (env BATCHWIRE_DB)")
        if ingest:
            p.add_argument("--broker", default=os.environ.get("BATCHWIRE_BROKER"),
                           help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883 (env BATCHWIRE_BROKER)")
            p.add_argument("--topic-prefix", default="batchwire",
                           help="first topic level of the wire contract (default: batchwire)")
            p.add_argument("--share-group", default=None,
                           help="MQTT shared-subscription group: run several ingest workers "
                                "with the same group to split the load")
            p.add_argument("--worker-id", default=None,
                           help="name of this ingest worker in acks and logs; a named worker keeps "
                                "a persistent broker session across restarts")
            p.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), default="5",
                           help="MQTT protocol version (default 5; 3.1.1 for brokers without "
                                "MQTT 5, which then get no Receive Maximum flow control)")
        if api:
            p.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1)")
            p.add_argument("--port", type=int, default=DEFAULT_PORT,
                           help=f"HTTP port (default {DEFAULT_PORT})")
        p.add_argument("--no-migrate", action="store_true",
                       help="do not apply pending database migrations at start-up")

    p = hsub.add_parser("run", help="ingest from MQTT and serve the HTTP API in one process")
    common(p, ingest=True, api=True)
    p.set_defaults(func=_cmd, ingest=True, api=True)
    p = hsub.add_parser("ingest", help="ingest from MQTT only")
    common(p, ingest=True, api=False)
    p.set_defaults(func=_cmd, ingest=True, api=False)
    p = hsub.add_parser("api", help="serve the HTTP API only")
    common(p, ingest=False, api=True)
    p.set_defaults(func=_cmd, ingest=False, api=True)


def _require(args: argparse.Namespace, name: str, env: str) -> str | None:
    value = getattr(args, name)
    if not value:
        print(f"batchwire historian: --{name} is required (or set {env})", file=sys.stderr)
    return value


def _cmd(args: argparse.Namespace) -> int:
    if not _require(args, "db", "BATCHWIRE_DB"):
        return 2
    if args.ingest and not _require(args, "broker", "BATCHWIRE_BROKER"):
        return 2

    async def main(stop: asyncio.Event) -> int:
        try:
            await run_historian(
                db=args.db,
                broker=args.broker if args.ingest else None,
                api_port=args.port if args.api else None,
                api_host=getattr(args, "host", "127.0.0.1"),
                topic_prefix=getattr(args, "topic_prefix", "batchwire"),
                share_group=getattr(args, "share_group", None),
                worker_id=getattr(args, "worker_id", None),
                mqtt_protocol=getattr(args, "mqtt_protocol", "5"),
                migrate_first=not args.no_migrate,
                stop=stop,
                announce=True,
            )
        except ServiceError as err:
            cause = f": {err.__cause__}" if err.__cause__ else ""
            print(f"batchwire historian: {err}{cause}", file=sys.stderr)
            return 1
        except Exception as err:  # noqa: BLE001 - a failed part ends the process; its supervisor restarts it
            log.exception("historian stopped on an error")
            print(f"batchwire historian: stopped on an error: {err}", file=sys.stderr)
            return 1
        return 0

    return run_service(main)


async def run_historian(*, db: str, broker: str | None, api_port: int | None,
                        api_host: str = "127.0.0.1", topic_prefix: str = "batchwire",
                        share_group: str | None = None, worker_id: str | None = None,
                        mqtt_protocol: str = "5", migrate_first: bool = True,
                        stop: asyncio.Event,
                        api_started: asyncio.Event | None = None,
                        announce: bool = False) -> None:
    """Run ingest (when ``broker``) and/or the API (when ``api_port``) until ``stop``."""
    from .api import create_app
    from .ingest import Ingestor
    from .store.migrate import migrate

    if migrate_first:
        try:
            applied = await asyncio.to_thread(migrate, db)
        except Exception as err:  # noqa: BLE001 - reported with its cause
            raise ServiceError("database migration failed") from err
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))

    tasks: list[asyncio.Task] = []
    ingestor = None
    if broker:
        ingestor = Ingestor(db, broker, topic_prefix=topic_prefix, share_group=share_group,
                            worker_id=worker_id, mqtt_protocol=mqtt_protocol,
                            migrate_on_start=False)
        tasks.append(asyncio.create_task(ingestor.run(stop), name="ingest"))
        if announce:
            print(f"ingest: {broker} (topics {topic_prefix}/v1/+/+/…) -> database", flush=True)
    if api_port is not None:
        app = create_app(db, ingest_status=ingestor.status if ingestor else None)
        tasks.append(asyncio.create_task(
            serve_api(app, api_host, api_port, stop, started=api_started), name="api"))
        if announce:
            print(f"API: http://{api_host}:{api_port}/api/v1/health  (OpenAPI: /docs)", flush=True)
    if not tasks:
        raise ServiceError("nothing to run: neither ingest nor API requested")
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                stop.set()
                raise t.exception()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
