"""GET /batches, /batches/{batch}, /batches/{batch}/completeness against a real database."""

from __future__ import annotations

from tests.integration.test_api_fixtures import api_client, api_db, at, data, iso  # noqa: F401


def seed_batches(data) -> None:
    data.batch("site1", "BR01", "B-16", "mAb-1", at(-100), at(-50))
    data.batch("site1", "BR01", "B-17", "mAb-1", at(0), at(20),
               phases=[("growth", at(5), at(20)), ("inoculation", at(0), at(5))])
    data.batch("site1", "BR02", "B-18", "mAb-2", at(30), at(50))


async def test_batches_newest_first_with_phases_and_filters(api_db, data):
    seed_batches(data)
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/batches")
        assert r.status_code == 200 and r.headers["X-Batchwire-Truncated"] == "false"
        body = r.json()
        assert [b["batch"] for b in body] == ["B-18", "B-17", "B-16"]
        b17 = body[1]
        assert b17 == {
            "site": "site1", "unit": "BR01", "batch": "B-17", "recipe": "mAb-1",
            "start": iso(at(0)), "end": iso(at(20)),
            "phases": [{"phase": "inoculation", "start": iso(at(0)), "end": iso(at(5))},
                       {"phase": "growth", "start": iso(at(5)), "end": iso(at(20))}],
        }
        assert body[0]["phases"] == []

        async def names(**params):
            r = await client.get("/api/v1/batches", params=params)
            assert r.status_code == 200, r.text
            return [b["batch"] for b in r.json()]

        assert await names(unit="BR01") == ["B-17", "B-16"]
        assert await names(recipe="mAb-2") == ["B-18"]
        assert await names(site="elsewhere") == []
        assert await names(start=iso(at(25))) == ["B-18"]
        assert await names(end=iso(at(0))) == ["B-16"]
        assert await names(start=iso(at(10)), end=iso(at(35))) == ["B-18", "B-17"]
        r = await client.get("/api/v1/batches", params={"limit": 1})
        assert [b["batch"] for b in r.json()] == ["B-18"] and r.headers["X-Batchwire-Truncated"] == "true"
        r = await client.get("/api/v1/batches", params={"start": "not-a-time"})
        assert r.status_code == 422 and r.json()["parameter"] == "start"


async def test_one_batch_404_and_ambiguous_id(api_db, data):
    seed_batches(data)
    data.batch("site1", "BR01", "B-99", None, at(60), at(61))
    data.batch("site1", "BR02", "B-99", None, at(60), at(62))
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/batches/B-17")
        assert r.status_code == 200
        body = r.json()
        assert body["unit"] == "BR01" and [p["phase"] for p in body["phases"]] == ["inoculation", "growth"]
        assert body["completeness"] == {"complete": True, "expected": 0, "received": 0, "missing": 0,
                                        "data_gaps": 0}
        r = await client.get("/api/v1/batches/B-404")
        assert r.status_code == 404 and r.json() == {"detail": "batch 'B-404' not found"}
        r = await client.get("/api/v1/batches/B-17", params={"unit": "BR02"})
        assert r.status_code == 404 and "unit='BR02'" in r.json()["detail"]
        r = await client.get("/api/v1/batches/B-99")
        assert r.status_code == 409
        assert "site1/BR01" in r.json()["detail"] and "site1/BR02" in r.json()["detail"]
        r = await client.get("/api/v1/batches/B-99", params={"unit": "BR02"})
        assert r.status_code == 200 and r.json()["end"] == iso(at(62))


async def test_batch_completeness_counts_the_batch_edges_messages(api_db, data):
    seed_batches(data)
    temp = data.tag("BR01.TEMP.PV", edge="edge1")
    other = data.tag("BR02.TEMP.PV", edge="edge2")
    ctx = data.context("site1", "BR01", "B-17", "growth", "mAb-1")
    ctx2 = data.context("site1", "BR02", "B-18", None, "mAb-2")
    data.samples(temp, [(at(m), 37.0, None, 0, ctx) for m in range(0, 21)])
    data.samples(other, [(at(m), 36.0, None, 0, ctx2) for m in range(30, 51)])
    # edge1 lost seqs 1-2 (session start), 11-13, and 21-59 (after the batch)
    data.messages("edge1", "s1", [*range(3, 11), *range(14, 21), *range(60, 71)])
    data.messages("edge2", "s2", range(1, 71))
    data.event("edge1", "data-gap", at(12), at(11), at(13), tags=["BR01.TEMP.PV"], source_id="g1")
    data.event("edge2", "data-gap", at(12), at(11), at(13), tags=["BR02.TEMP.PV"], source_id="g2")
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/batches/B-17/completeness")
        assert r.status_code == 200
        body = r.json()
        assert (body["batch"], body["site"], body["unit"], body["edges"]) == ("B-17", "site1", "BR01", ["edge1"])
        assert body["start"] == iso(at(0))
        assert body["complete"] is False
        (session,) = body["sessions"]
        assert (session["edge"], session["session"]) == ("edge1", "s1")
        assert (session["first_seq"], session["last_seq"]) == (1, 20)
        assert (session["expected"], session["received"], session["missing_count"]) == (20, 15, 5)
        assert session["missing"] == [[1, 2], [11, 13]]
        assert [e["source_id"] for e in body["data_gaps"]] == ["g1"]

        r = await client.get("/api/v1/batches/B-17")
        assert r.json()["completeness"] == {"complete": False, "expected": 20, "received": 15,
                                            "missing": 5, "data_gaps": 1}
        r = await client.get("/api/v1/batches/B-404/completeness")
        assert r.status_code == 404
