"""Tag groups: membership rules, the retention job per group on both backends, the
`batchwire db groups|retention|migrate --expected-rate` commands."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from edge.contract import now_micros
from historian import dbcli
from historian.store import Backend
from historian.store.groups import GroupError, delete_group, list_groups, set_group
from historian.store.writer import WriteBatch
from tests.integration.test_store_fixtures import backend_of, birth, data, db, sample, writer  # noqa: F401

DAY_US = 86_400_000_000


def run(capsys, *argv) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    dbcli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    return code, capsys.readouterr().out


def q(dsn, sql, *args):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, args)
        return cur.fetchall() if cur.description else []


def test_a_tag_follows_one_group_members_first_then_the_most_specific_pattern(writer, db):
    writer.write(WriteBatch(births=[birth("BR01.PH", "BR01.TEMP", "BR02.PH", "CPS1.X", "a_b", "axb")]))
    with psycopg.connect(db, autocommit=True) as conn:
        set_group(conn, "br01", pattern="BR01.*", raw_retention=timedelta(days=30))
        set_group(conn, "ph", pattern="BR0?.PH", raw_retention=timedelta(days=90))
        set_group(conn, "pinned", add=("BR01.TEMP", "not-declared-yet"))
        set_group(conn, "underscore", pattern="a_b")  # LIKE's _ is literal in a pattern
        got = dict(conn.execute("SELECT tag_name, group_name FROM batchwire.tag_group_of").fetchall())
        assert got == {"BR01.PH": "ph", "BR01.TEMP": "pinned", "BR02.PH": "ph", "a_b": "underscore"}
        groups = {g.name: g for g in list_groups(conn)}
        assert groups["pinned"].members == ["BR01.TEMP", "not-declared-yet"] and groups["pinned"].tags == 1
        assert groups["br01"].tags == 0 and groups["ph"].raw_retention == timedelta(days=90)
        set_group(conn, "pinned", remove=("BR01.TEMP",))
        assert conn.execute("SELECT group_name FROM batchwire.tag_group_of WHERE tag_name = 'BR01.TEMP'"
                            ).fetchone() == ("br01",)
        assert delete_group(conn, "ph") and not delete_group(conn, "ph")
        assert conn.execute("SELECT group_name FROM batchwire.tag_group_of WHERE tag_name = 'BR01.PH'"
                            ).fetchone() == ("br01",)
        with pytest.raises(GroupError, match="raw_retention must be positive"):
            set_group(conn, "bad", raw_retention=timedelta(0))


def _write_old_and_new(writer, db) -> None:
    """Tags SHORT (in a 10-day group) and LONG (no group): one sample 20 days ago, one now."""
    writer.write(WriteBatch(births=[birth("SHORT", "LONG")]))
    old, new = now_micros() - 20 * DAY_US, now_micros()
    if backend_of(db) is Backend.PLAIN:
        q(db, "SELECT count(*) FROM batchwire.ensure_partitions(%s, %s)",
          datetime.fromtimestamp(old / 1e6, timezone.utc).date(), datetime.fromtimestamp(old / 1e6, timezone.utc).date())
    writer.write(WriteBatch(data=[data(1, [sample(t, ts, 1.0) for t in ("SHORT", "LONG") for ts in (old, new)])]))
    if backend_of(db) is Backend.TIMESCALEDB:  # the per-group delete must reach into compressed chunks too
        q(db, "SELECT compress_chunk(c) FROM show_chunks('batchwire.samples', older_than => now() - interval '10 days') c")


def counts(db):
    return dict(q(db, "SELECT t.name, count(*) FROM batchwire.samples s JOIN batchwire.tags t USING (tag_id) "
                      "GROUP BY 1"))


def test_retention_job_deletes_per_group_and_keeps_partitions_others_need(writer, db, capsys):
    _write_old_and_new(writer, db)
    assert run(capsys, "db", "groups", "set", "short", "--db", db, "--pattern", "SHORT", "--keep-days", "10")[0] == 0
    code, out = run(capsys, "db", "retention", "--db", db, "--keep-days", "400")
    assert code == 0 and "horizon: 400 days" in out, out
    assert counts(db) == {"SHORT": 1, "LONG": 2}  # SHORT's 20-day-old sample is gone, LONG keeps its
    assert "per-group deletion: 1 tag(s), 1 row(s) deleted" in out
    if backend_of(db) is Backend.TIMESCALEDB:
        (config,), = q(db, "SELECT config FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                           "AND hypertable_schema = 'batchwire'")
        assert config["drop_after"] == "400 days"
    # the default becomes 15 days: LONG's old sample goes with its partition (plain) / by the
    # policy (TimescaleDB), SHORT keeps being trimmed per group
    code, out = run(capsys, "db", "retention", "--db", db, "--keep-days", "15")
    assert code == 0 and "horizon: 15 days" in out
    if backend_of(db) is Backend.PLAIN:
        assert "samples_packed_" in out  # the 20-day-old partition was dropped
        assert counts(db) == {"SHORT": 1, "LONG": 1}
    else:
        (config,), = q(db, "SELECT config FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                           "AND hypertable_schema = 'batchwire'")
        assert config["drop_after"] == "15 days"


def test_a_group_kept_forever_blocks_partition_drops_but_not_per_tag_deletes(writer, db, capsys):
    _write_old_and_new(writer, db)
    run(capsys, "db", "groups", "set", "short", "--db", db, "--add", "SHORT", "--keep-forever")
    code, out = run(capsys, "db", "retention", "--db", db, "--keep-days", "9")
    assert code == 0 and "horizon: none" in out
    assert counts(db) == {"SHORT": 2, "LONG": 1}  # LONG (default, 9 days) trimmed per tag
    if backend_of(db) is Backend.TIMESCALEDB:
        assert q(db, "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'") == [(0,)]


def test_groups_cli_list_set_delete_and_errors(db, capsys):
    code, out = run(capsys, "db", "groups", "set", "g1", "--db", db, "--pattern", "BR*", "--keep-days", "30",
                    "--compress-after-days", "3")
    assert code == 0
    code, out = run(capsys, "db", "groups", "list", "--db", db, "--json")
    assert json.loads(out) == [{"name": "g1", "pattern": "BR*", "members": [], "raw_retention_days": 30.0,
                                "compress_after_days": 3.0, "tags": 0}]
    assert run(capsys, "db", "groups", "set", "g1", "--db", db, "--keep-days", "0")[0] == 2
    if backend_of(db) is Backend.TIMESCALEDB:
        assert run(capsys, "db", "groups", "set", "g1", "--db", db, "--keep-days", "3")[0] == 2
        assert run(capsys, "db", "retention", "--db", db, "--keep-days", "3")[0] == 2
    assert run(capsys, "db", "groups", "delete", "g1", "--db", db)[0] == 0
    assert run(capsys, "db", "groups", "delete", "g1", "--db", db)[0] == 1
    assert run(capsys, "db", "groups", "list", "--db", db)[1].startswith("no tag groups")


def test_compress_after_per_group_sets_the_hypertable_policy(writer, db, capsys):
    if backend_of(db) is not Backend.TIMESCALEDB:
        pytest.skip("compression is TimescaleDB's")
    writer.write(WriteBatch(births=[birth("A", "B")]))
    run(capsys, "db", "groups", "set", "fast", "--db", db, "--add", "A", "--compress-after-days", "1")
    code, out = run(capsys, "db", "retention", "--db", db)
    assert code == 0 and "compression policy: after 1 day" in out
    (config,), = q(db, "SELECT config FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression' "
                       "AND hypertable_schema = 'batchwire'")
    assert config["compress_after"] == "1 day"


def test_expected_rate_sets_chunk_interval_or_partition_span(db, capsys):
    code, out = run(capsys, "db", "migrate", "--db", db, "--expected-rate", "1000")
    assert code == 0
    if backend_of(db) is Backend.TIMESCALEDB:
        assert "chunk interval 6:00:00" in out
        assert q(db, "SELECT time_interval FROM timescaledb_information.dimensions "
                     "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples'") == [(timedelta(hours=6),)]
        return
    assert "partitions of 7 day(s)" in out
    today = datetime.now(timezone.utc).date()
    made = [r[0] for r in q(db, "SELECT * FROM batchwire.ensure_partitions(%s, %s)",
                            today + timedelta(days=1), today + timedelta(days=30))]
    spans = q(db, "SELECT lo, hi FROM batchwire.sample_partitions() ORDER BY lo")
    for (lo1, hi1), (lo2, _) in zip(spans, spans[1:]):
        assert hi1 <= lo2  # no overlaps where 1-day and 7-day partitions meet
    assert max(hi - lo for lo, hi in spans) == timedelta(days=7) and len(made) >= 3
    later = datetime.combine(today + timedelta(days=29), datetime.min.time(), timezone.utc)
    assert any(lo <= later < hi for lo, hi in spans)
