"""The API over data written by the historian's own writer (births, data, events, states)."""

from __future__ import annotations

import math

import psycopg

from edge.contract import BatchContext, BirthMessage, DataMessage, EventMessage, Sample, StateMessage, TagInfo
from edge.contract.messages import to_micros
from edge.contract.quality import BAD_SENSOR_FAILURE
from historian.store.backend import installed_backend
from historian.store.writer import DataIn, WriteBatch, Writer, open_pool
from tests.integration.test_api_fixtures import api_client, api_db, at, iso  # noqa: F401


def us(minutes: float) -> int:
    return to_micros(at(minutes))


def write(dsn: str, batch: WriteBatch) -> None:
    with psycopg.connect(dsn) as conn:
        backend = installed_backend(conn)
    pool = open_pool(dsn)
    pool.open()
    try:
        Writer(pool, backend, worker="test").write(batch)
    finally:
        pool.close()


async def test_written_messages_are_served_with_context_batches_and_completeness(api_db):
    tags = (TagInfo("BR01.TEMP.PV", "float", "degC", "Vessel temperature", "opcua:ns=2;s=T", 0.0, 50.0),
            TagInfo("BR01.PUMP.ON", "bool"))
    growth = BatchContext("site1", "BR01", "B-17", "growth", "mAb-1")
    seed = BatchContext("site1", "BR01", "B-17", "inoculation", "mAb-1")

    def data(seq: int, minute: int, value: float, ctx: str, quality: int = 0) -> DataIn:
        msg = DataMessage("edge1", "site1", "s1", seq, us(minute),
                          (Sample("BR01.TEMP.PV", us(minute), value, quality, ctx),
                           Sample("BR01.PUMP.ON", us(minute), True, 0, ctx)),
                          {"i": seed, "g": growth})
        return DataIn(msg, us(minute))

    write(api_db, WriteBatch(
        births=[BirthMessage("edge1", "site1", "s1", us(0), tags)],
        states=[StateMessage("edge1", "site1", "s1", "online", us(0))],
        # seq 3 never arrives
        data=[data(1, 0, 36.5, "i"), data(2, 1, math.nan, "g", BAD_SENSOR_FAILURE), data(4, 3, 37.0, "g")],
        events=[EventMessage("edge1", "site1", "gap-1", "data-gap", us(2), us(2), us(2), us(2),
                             ("BR01.TEMP.PV",), {"dropped": 1})],
    ))
    async with api_client(api_db) as client:
        tags_body = (await client.get("/api/v1/tags")).json()
        assert [t["name"] for t in tags_body] == ["BR01.PUMP.ON", "BR01.TEMP.PV"]
        assert tags_body[1]["unit"] == "degC" and tags_body[1]["edge"] == "edge1"

        window = {"start": iso(at(0)), "end": iso(at(10))}
        rec = (await client.get("/api/v1/tags/BR01.TEMP.PV/recorded", params=window)).json()
        assert [s["value"] for s in rec["samples"]] == [36.5, "NaN", 37.0]
        assert [s["phase"] for s in rec["samples"]] == ["inoculation", "growth", "growth"]
        assert rec["samples"][1]["quality"] == BAD_SENSOR_FAILURE and rec["samples"][1]["good"] is False
        pump = (await client.get("/api/v1/tags/BR01.PUMP.ON/recorded", params=window)).json()
        assert [s["value"] for s in pump["samples"]] == [True, True, True]

        (batch,) = (await client.get("/api/v1/batches")).json()
        assert (batch["batch"], batch["start"], batch["end"]) == ("B-17", iso(at(0)), iso(at(3)))
        assert [p["phase"] for p in batch["phases"]] == ["inoculation", "growth"]

        comp = (await client.get("/api/v1/batches/B-17/completeness")).json()
        assert comp["edges"] == ["edge1"]
        (session,) = comp["sessions"]
        assert session["missing"] == [[3, 3]] and (session["expected"], session["received"]) == (4, 3)
        assert [e["source_id"] for e in comp["data_gaps"]] == ["gap-1"]

        edges = (await client.get("/api/v1/edges")).json()
        assert [(e["edge"], e["state"], e["session"]) for e in edges] == [("edge1", "online", "s1")]
