"""`batchwire db …`: schema migrations and storage figures."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="database schema and storage")
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    m = sub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    m.add_argument("--db", required=True, metavar="URL", help="PostgreSQL URL, e.g. postgresql://user@host/db")
    m.set_defaults(func=_migrate)

    s = sub.add_parser("stats", help="rows, bytes per sample, partitions/chunks, compression, rollup lag")
    s.add_argument("--db", required=True, metavar="URL")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=_stats)

    r = sub.add_parser("retention", help="drop raw samples older than a number of days (plain backend: "
                                         "whole daily partitions; TimescaleDB: a retention policy)")
    r.add_argument("--db", required=True, metavar="URL")
    r.add_argument("--keep-days", type=int, required=True, help="days of raw samples to keep (>= 1)")
    r.set_defaults(func=_retention)


def _migrate(args: argparse.Namespace) -> int:
    from historian.store import StoreError, migrate

    try:
        applied = migrate(args.db)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from historian.store import StoreError
    from historian.store.stats import storage_stats

    try:
        stats = storage_stats(args.db)
    except (StoreError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # psycopg errors: say what, not a traceback
        print(f"error: cannot read storage figures: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, default=str, indent=2))
    else:
        width = max(map(len, stats))
        for k, v in stats.items():
            print(f"{k:<{width}}  {'-' if v is None else v}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store.backend import installed_backend

    if args.keep_days < 1:
        print("error: --keep-days must be >= 1", file=sys.stderr)
        return 2
    with psycopg.connect(args.db, autocommit=True) as conn:
        backend = installed_backend(conn)
        if backend is None:
            print("error: no batchwire schema: run `batchwire db migrate` first", file=sys.stderr)
            return 1
        keep = timedelta(days=args.keep_days)
        if backend.value == "plain":
            cutoff = datetime.now(timezone.utc) - keep
            dropped = [r[0] for r in conn.execute(
                "SELECT * FROM batchwire.drop_partitions_before(%s)", (cutoff,))]
            print("dropped: " + ", ".join(dropped) if dropped else "nothing older than the cutoff")
        else:
            conn.execute("SELECT remove_retention_policy('batchwire.samples', if_exists => true)")
            conn.execute("SELECT add_retention_policy('batchwire.samples', drop_after => %s)", (keep,))
            print(f"retention policy: drop chunks older than {args.keep_days} days")
    return 0
