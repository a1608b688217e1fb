"""`batchwire db …`: schema migrations, storage figures, retention, tag groups and tag ownership."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="database schema and storage")
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    m = sub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    m.add_argument("--db", required=True, metavar="URL", help="PostgreSQL URL, e.g. postgresql://user@host/db")
    m.add_argument("--expected-rate", type=float, metavar="N",
                   help="expected ingest rate in samples/s of the whole store: sets the TimescaleDB chunk "
                        "interval (new chunks) or the plain partition span (new partitions)")
    m.set_defaults(func=_migrate)

    s = sub.add_parser("stats", help="rows, bytes per sample, partitions/chunks, compression, rollup lag")
    s.add_argument("--db", required=True, metavar="URL")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=_stats)

    r = sub.add_parser("retention", help="set the default raw retention (optional) and run the retention job: "
                                         "per tag group, then whole partitions (plain) / a retention policy "
                                         "(TimescaleDB) no group needs")
    r.add_argument("--db", required=True, metavar="URL")
    keep = r.add_mutually_exclusive_group()
    keep.add_argument("--keep-days", type=int, help="default days of raw samples to keep, for tags in no group (>= 1)")
    keep.add_argument("--keep-forever", action="store_true", help="tags in no group keep raw samples forever")
    r.set_defaults(func=_retention)

    g = sub.add_parser("groups", help="tag groups: retention and compression settings per group of tags")
    gsub = g.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    gl = gsub.add_parser("list", help="every group with its settings, members and matched tags")
    gl.add_argument("--db", required=True, metavar="URL")
    gl.add_argument("--json", action="store_true")
    gl.set_defaults(func=_groups_list)
    gs = gsub.add_parser("set", help="create a group or change the settings given (others stay)")
    gs.add_argument("name")
    gs.add_argument("--db", required=True, metavar="URL")
    pat = gs.add_mutually_exclusive_group()
    pat.add_argument("--pattern", help="tag names, shell-style: * any characters, ? one (e.g. 'BR01.*')")
    pat.add_argument("--no-pattern", action="store_true", help="members only")
    gs.add_argument("--add", nargs="+", default=[], metavar="TAG", help="tags to make members by name")
    gs.add_argument("--remove", nargs="+", default=[], metavar="TAG", help="members to remove")
    gk = gs.add_mutually_exclusive_group()
    gk.add_argument("--keep-days", type=int, help="days of raw samples to keep for the group's tags")
    gk.add_argument("--keep-forever", action="store_true", help="keep the group's raw samples forever")
    gc = gs.add_mutually_exclusive_group()
    gc.add_argument("--compress-after-days", type=int, help="TimescaleDB: compress after this many days")
    gc.add_argument("--compress-default", action="store_true", help="TimescaleDB: the store default")
    gs.set_defaults(func=_groups_set)
    gd = gsub.add_parser("delete", help="delete a group (its tags fall back to other groups or the default)")
    gd.add_argument("name")
    gd.add_argument("--db", required=True, metavar="URL")
    gd.set_defaults(func=_groups_delete)

    t = sub.add_parser("tags", help="tag ownership: which edge may send a tag's samples")
    tsub = t.add_subparsers(dest="tags_command", metavar="ACTION", required=True)
    tr = tsub.add_parser("reassign", help="make another edge the owner of a tag (recorded in tag_history); "
                                          "until then ingest quarantines that edge's data and births for it")
    tr.add_argument("tag")
    tr.add_argument("--edge", required=True, help="the edge that owns the tag from now on")
    tr.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    tr.add_argument("--by", help="who reassigns it (default: the operating-system user)")
    tr.add_argument("--site", help="the tag's site from now on (default: unchanged until the new owner's birth)")
    tr.add_argument("--db", required=True, metavar="URL")
    tr.set_defaults(func=_tags_reassign)


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _migrate(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store import StoreError, migrate
    from historian.store.sizing import apply_expected_rate

    if args.expected_rate is not None and not args.expected_rate > 0:
        return _fail("--expected-rate must be > 0 samples/s", 2)
    try:
        applied = migrate(args.db)
    except StoreError as err:
        return _fail(str(err))
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    if args.expected_rate is not None:
        try:
            with psycopg.connect(args.db, autocommit=True) as conn:
                print(apply_expected_rate(conn, args.expected_rate))
        except psycopg.Error as err:
            return _fail(f"cannot apply --expected-rate: {err}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from historian.store import StoreError
    from historian.store.stats import storage_stats

    try:
        stats = storage_stats(args.db)
    except (StoreError, LookupError) as err:
        return _fail(str(err))
    except Exception as err:  # psycopg errors: say what, not a traceback
        return _fail(f"cannot read storage figures: {err}")
    if args.json:
        print(json.dumps(stats, default=str, indent=2))
    else:
        width = max(map(len, stats))
        for k, v in stats.items():
            print(f"{k:<{width}}  {'-' if v is None else v}")
    return 0


def _connect(url: str):
    import psycopg

    from historian.store.backend import installed_backend

    conn = psycopg.connect(url, autocommit=True)
    if installed_backend(conn) is None:
        conn.close()
        raise LookupError("no batchwire schema: run `batchwire db migrate` first")
    return conn


def _retention(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store.backend import Backend, installed_backend
    from historian.store.retention import MIN_TIMESCALE_RETENTION, apply_retention, set_setting

    if args.keep_days is not None and args.keep_days < 1:
        return _fail("--keep-days must be >= 1", 2)
    try:
        with _connect(args.db) as conn:
            if args.keep_days is not None:
                if installed_backend(conn) is Backend.TIMESCALEDB and \
                        timedelta(days=args.keep_days) < MIN_TIMESCALE_RETENTION:
                    return _fail(f"--keep-days must be >= {MIN_TIMESCALE_RETENTION.days} on TimescaleDB: the "
                                 "continuous aggregates refresh the last 7 days from raw samples", 2)
                set_setting(conn, "raw_retention", f"{args.keep_days} days")
            elif args.keep_forever:
                set_setting(conn, "raw_retention", None)
            report = apply_retention(conn)
    except (LookupError, psycopg.Error) as err:
        return _fail(str(err))
    if report.skipped:
        print("another retention job is running; nothing done")
        return 0
    horizon = "none (some tags keep raw samples forever)" if report.horizon is None else \
        f"{report.horizon.days} days"
    print(f"horizon: {horizon}")
    if report.backend == "plain":
        print("dropped: " + ", ".join(report.dropped) if report.dropped else "dropped: no partition")
    else:
        print(f"retention policy: {'drop chunks older than ' + horizon if report.horizon else 'none'}; "
              f"compression policy: after {report.compress_after}")
    print(f"per-group deletion: {report.tags_trimmed} tag(s), {report.deleted_rows} row(s) deleted")
    return 0


def _days(n: int | None, flag: str) -> timedelta:
    if n is None or n < 1:
        raise ValueError(f"{flag} must be >= 1")
    return timedelta(days=n)


def _groups_list(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store.groups import list_groups

    try:
        with _connect(args.db) as conn:
            groups = list_groups(conn)
    except (LookupError, psycopg.Error) as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps([_group_json(g) for g in groups], indent=2))
        return 0
    if not groups:
        print("no tag groups (every tag follows the default retention)")
    for g in groups:
        j = _group_json(g)
        print(f"{g.name}: pattern {j['pattern'] or '-'}, members {', '.join(g.members) or '-'}, "
              f"raw retention {j['raw_retention_days'] or 'forever'} days, "
              f"compress after {j['compress_after_days'] or 'default'} days, {g.tags} tag(s)")
    return 0


def _group_json(g) -> dict:
    return {"name": g.name, "pattern": g.pattern, "members": g.members,
            "raw_retention_days": None if g.raw_retention is None else g.raw_retention.total_seconds() / 86400,
            "compress_after_days": None if g.compress_after is None else g.compress_after.total_seconds() / 86400,
            "tags": g.tags}


def _groups_set(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store.groups import UNCHANGED, GroupError, set_group

    kw = {}
    try:
        if args.pattern is not None or args.no_pattern:
            kw["pattern"] = None if args.no_pattern else args.pattern
        if args.keep_days is not None or args.keep_forever:
            kw["raw_retention"] = None if args.keep_forever else _days(args.keep_days, "--keep-days")
        if args.compress_after_days is not None or args.compress_default:
            kw["compress_after"] = None if args.compress_default else _days(args.compress_after_days,
                                                                            "--compress-after-days")
    except ValueError as err:
        return _fail(str(err), 2)
    try:
        with _connect(args.db) as conn:
            g = set_group(conn, args.name, add=tuple(args.add), remove=tuple(args.remove),
                          **{k: v for k, v in kw.items() if v is not UNCHANGED})
    except GroupError as err:
        return _fail(str(err), 2)
    except (LookupError, psycopg.Error) as err:
        return _fail(str(err))
    print(f"group {g.name}: {g.tags} tag(s); applied by the next retention job (`batchwire db retention`, "
          "or each ingest worker hourly)")
    return 0


def _groups_delete(args: argparse.Namespace) -> int:
    import psycopg

    from historian.store.groups import delete_group

    try:
        with _connect(args.db) as conn:
            gone = delete_group(conn, args.name)
    except (LookupError, psycopg.Error) as err:
        return _fail(str(err))
    if not gone:
        return _fail(f"no tag group named {args.name!r}")
    print(f"deleted group {args.name}")
    return 0


def _tags_reassign(args: argparse.Namespace) -> int:
    import getpass

    import psycopg

    from historian.store.tags import TagError, reassign_tag

    try:
        by = args.by or getpass.getuser()
        with _connect(args.db) as conn:
            r = reassign_tag(conn, args.tag, args.edge, reason=args.reason, changed_by=by, site=args.site)
    except TagError as err:
        return _fail(str(err), 2)
    except (LookupError, psycopg.Error) as err:
        return _fail(str(err))
    print(f"tag {r.tag}: owner {r.old_edge or '-'} -> {r.new_edge}; running ingest workers apply it within "
          "their tag cache lifetime (60 s)")
    return 0
