"""`batchwire db migrate|stats|retention` handlers."""

from __future__ import annotations

import argparse
import json

from historian import dbcli


def run(capsys, *argv) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    dbcli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    return code, capsys.readouterr().out


def test_migrate_stats_retention(fresh_db, capsys):
    assert run(capsys, "db", "migrate", "--db", fresh_db)[1].startswith("applied: 0001_core")
    assert run(capsys, "db", "migrate", "--db", fresh_db) == (0, "schema is up to date\n")
    code, out = run(capsys, "db", "stats", "--db", fresh_db, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["rows"] == 0 and stats["backend"] in ("plain", "timescaledb")
    code, out = run(capsys, "db", "retention", "--db", fresh_db, "--keep-days", "400")
    assert code == 0


def test_stats_without_schema_is_an_error(fresh_db, capsys):
    parser = argparse.ArgumentParser()
    dbcli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["db", "stats", "--db", fresh_db])
    assert args.func(args) == 1
