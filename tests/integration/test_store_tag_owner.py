"""Tag ownership: a data sample's tag must be declared by a birth of the same edge.

Data and birth entries of one edge for a tag another edge owns are quarantined with reason
``tag-owned-by-other-edge``; an operator moves a tag with ``reassign_tag`` /
``batchwire db tags reassign``, recorded in ``tag_history``.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime, timezone

import orjson
import psycopg
import pytest

from edge.contract import to_micros
from historian import dbcli
from historian.store.tags import TagError, reassign_tag
from historian.store.writer import WriteBatch, Writer
from tests.integration.test_store_fixtures import (  # noqa: F401 - fixtures
    backend_of, birth, data, db, sample, writer,
)

T0 = to_micros(datetime.now(timezone.utc).replace(second=0, microsecond=0))


def rows(dsn, sql, *args):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def birth_of(edge: str, *names: str, **kw):
    return dataclasses.replace(birth(*names, **kw), edge=edge)


def data_of(edge: str, seq: int, samples, **kw):
    d = data(seq, samples, **kw)
    d.msg = dataclasses.replace(d.msg, edge=edge)
    d.topic = f"t/v1/s1/{edge}/data"
    d.payload = f"payload of {edge} {seq}".encode()
    return d


def stored(dsn, tag: str) -> list:
    return rows(dsn, "SELECT s.value FROM batchwire.samples s JOIN batchwire.tags t USING (tag_id) "
                     "WHERE t.name = %s ORDER BY s.ts", tag)


def test_own_tags_applied_foreign_ones_quarantined_with_owner(writer, db):
    writer.write(WriteBatch(births=[birth_of("e1", "A1"), birth_of("e2", "B1")]))
    # the same writer has both tags cached now: the fast path must still check the owner
    writer.write(WriteBatch(data=[data_of("e1", 1, [sample("A1", T0, 1.0)])]))
    mixed = data_of("e2", 1, [sample("B1", T0, 2.0), sample("A1", T0 + 1, 66.0),
                              sample("A1", T0 + 2, 67.0), sample("NOPE", T0 + 3, 0.0)])
    res = writer.write(WriteBatch(data=[mixed]))
    assert res.samples == 1 and [d.msg.seq for d in res.applied] == [1] and res.quarantined == 1
    assert stored(db, "A1") == [(1.0,)] and stored(db, "B1") == [(2.0,)]
    (reason, detail, edge, seq, payload), = rows(
        db, "SELECT reason, detail, edge, seq, payload FROM batchwire.quarantine")
    assert (reason, edge, seq, bytes(payload)) == ("tag-owned-by-other-edge", "e2", 1, b"payload of e2 1")
    assert "A1 (2, owned by edge e1)" in detail and "NOPE (1)" in detail
    # not applied = foreign + undeclared; the message is committed, so a re-send is a duplicate
    assert rows(db, "SELECT samples, undeclared FROM batchwire.ingest_log WHERE edge = 'e2'") == [(1, 3)]
    again = writer.write(WriteBatch(data=[mixed]))
    assert len(again.duplicates) == 1 and again.quarantined == 0


def test_foreign_tag_in_a_fresh_writer_and_in_the_births_batch(writer, db):
    # births and data in one batch: the lookup reads inside the transaction
    res = writer.write(WriteBatch(births=[birth_of("e1", "A1")],
                                  data=[data_of("e2", 1, [sample("A1", T0, 5.0)])]))
    assert res.samples == 0 and res.quarantined == 1
    fresh = Writer(writer.pool, writer.backend, worker="w2")  # nothing cached
    res = fresh.write(WriteBatch(data=[data_of("e2", 2, [sample("A1", T0 + 1, 6.0)])]))
    assert res.samples == 0
    assert rows(db, "SELECT reason, seq FROM batchwire.quarantine ORDER BY seq") == [
        ("tag-owned-by-other-edge", 1), ("tag-owned-by-other-edge", 2)]
    assert stored(db, "A1") == []


def test_birth_of_another_edge_does_not_take_a_tag_over(writer, db):
    writer.write(WriteBatch(births=[birth_of("e1", "A1", unit="degC")]))
    takeover = birth_of("e2", "A1", "B1", unit="K")
    res = writer.write(WriteBatch(births=[takeover]))
    assert res.quarantined == 1
    assert rows(db, "SELECT name, edge, unit FROM batchwire.tags ORDER BY name") == [
        ("A1", "e1", "degC"), ("B1", "e2", "K")]
    assert rows(db, "SELECT t.name, h.edge FROM batchwire.tag_history h JOIN batchwire.tags t USING (tag_id) "
                    "ORDER BY h.valid_from") == [("A1", "e1"), ("B1", "e2")]
    (reason, detail, edge, payload), = rows(db, "SELECT reason, detail, edge, payload FROM batchwire.quarantine")
    assert reason == "tag-owned-by-other-edge" and edge == "e2" and "A1 (owned by edge e1)" in detail
    kept = orjson.loads(bytes(payload))
    assert kept["kind"] == "birth" and [t["name"] for t in kept["tags"]] == ["A1"]
    # the retained birth comes again (reconnect, a second worker): one record is enough
    other_worker = Writer(writer.pool, writer.backend, worker="w2")
    assert other_worker.write(WriteBatch(births=[takeover])).quarantined == 0
    assert writer.write(WriteBatch(births=[takeover])).quarantined == 0
    assert rows(db, "SELECT count(*) FROM batchwire.quarantine") == [(1,)]
    # and the refused tag stays refused for e2's data
    assert writer.write(WriteBatch(data=[data_of("e2", 1, [sample("A1", T0, 1.0)])])).samples == 0


def test_tag_with_no_owner_is_claimed_by_a_birth_and_refuses_data_before(writer, db):
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO batchwire.tags (name, datatype) VALUES ('LOOSE', 'float')")
    res = writer.write(WriteBatch(data=[data_of("e1", 1, [sample("LOOSE", T0, 1.0)])]))
    assert res.samples == 0
    assert rows(db, "SELECT reason FROM batchwire.quarantine") == [("undeclared-tag",)]
    writer.write(WriteBatch(births=[birth_of("e1", "LOOSE")]))
    assert writer.write(WriteBatch(data=[data_of("e1", 2, [sample("LOOSE", T0 + 1, 2.0)])])).samples == 1
    assert rows(db, "SELECT edge FROM batchwire.tags") == [("e1",)]


def test_reassign_moves_the_tag_and_is_audit_trailed(writer, db):
    writer.write(WriteBatch(births=[birth_of("e1", "A1")]))
    writer.write(WriteBatch(data=[data_of("e1", 1, [sample("A1", T0, 1.0)])]))  # cached as e1's
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(TagError, match="no tag named 'ZZ'"):
            reassign_tag(conn, "ZZ", "e2", reason="x", changed_by="op")
        with pytest.raises(TagError, match="--reason"):
            reassign_tag(conn, "A1", "e2", reason=" ", changed_by="op")
        r = reassign_tag(conn, "A1", "e2", reason="BR01 moved to gateway e2", changed_by="op", site="s2")
    assert (r.old_edge, r.new_edge, r.site) == ("e1", "e2", "s2")
    assert rows(db, "SELECT edge, site, reason, changed_by FROM batchwire.tag_history ORDER BY valid_from") == [
        ("e1", "s1", None, None), ("e2", "s2", "BR01 moved to gateway e2", "op")]
    # the new owner's data is applied by the running writer at once
    assert writer.write(WriteBatch(data=[data_of("e2", 1, [sample("A1", T0 + 1, 2.0)])])).samples == 1
    # the old owner's next birth is refused, and from then on its data too
    assert writer.write(WriteBatch(births=[birth_of("e1", "A1")])).quarantined == 1
    assert writer.write(WriteBatch(data=[data_of("e1", 2, [sample("A1", T0 + 2, 3.0)])])).samples == 0
    assert stored(db, "A1") == [(1.0,), (2.0,)]


def test_old_owner_cache_expires(writer, db):
    short = Writer(writer.pool, writer.backend, worker="w2", tag_cache_ttl=0.0)
    short.write(WriteBatch(births=[birth_of("e1", "A1")]))
    assert short.write(WriteBatch(data=[data_of("e1", 1, [sample("A1", T0, 1.0)])])).samples == 1
    with psycopg.connect(db, autocommit=True) as conn:
        reassign_tag(conn, "A1", "e2", reason="moved", changed_by="op")
    # no birth of e1 came: the expired cache is read again
    assert short.write(WriteBatch(data=[data_of("e1", 2, [sample("A1", T0 + 1, 2.0)])])).samples == 0


def test_cli_reassign(db, capsys):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO batchwire.tags (name, datatype, edge) VALUES ('A1', 'float', 'e1')")

    def cli(*argv):
        parser = argparse.ArgumentParser()
        dbcli.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["db", "tags", *argv, "--db", db])
        code = args.func(args)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = cli("reassign", "A1", "--edge", "e2", "--reason", "gateway replaced", "--by", "alice")
    assert code == 0, err
    assert "e1 -> e2" in out
    assert rows(db, "SELECT edge, reason, changed_by FROM batchwire.tag_history") == [
        ("e2", "gateway replaced", "alice")]
    code, _, err = cli("reassign", "NOPE", "--edge", "e2", "--reason", "x")
    assert code == 2 and "no tag named 'NOPE'" in err
