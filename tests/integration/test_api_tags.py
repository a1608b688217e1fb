"""GET /tags, /tags/{tag}, /tags/{tag}/recorded against a real database."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from tests.integration.test_api_fixtures import api_client, api_db, at, data, iso  # noqa: F401

BAD = -2147483648  # 0x80000000 (Bad) as stored in the signed int4 column


async def test_tag_registry_with_metadata_filters_and_404(api_db, data):
    data.tag("BR01.TEMP.PV", "float", "degC", description="Vessel temperature", low=0.0, high=math.inf,
             source="opcua:ns=2;s=BR01.TEMP.PV")
    data.tag("BR01.PH.PV", "float", "pH", description="Culture pH")
    data.tag("BR02.TEMP.PV", "float", "degC", site="site2", edge="edge2")
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/tags")
        assert r.status_code == 200
        body = r.json()
        assert [t["name"] for t in body] == ["BR01.PH.PV", "BR01.TEMP.PV", "BR02.TEMP.PV"]
        temp = body[1]
        assert temp["unit"] == "degC" and temp["datatype"] == "float"
        assert temp["source"] == "opcua:ns=2;s=BR01.TEMP.PV"
        assert (temp["low"], temp["high"]) == (0.0, "Infinity")
        assert (temp["site"], temp["edge"]) == ("site1", "edge1")
        assert temp["created_at"].endswith("Z")

        r = await client.get("/api/v1/tags", params={"q": "temp"})
        assert [t["name"] for t in r.json()] == ["BR01.TEMP.PV", "BR02.TEMP.PV"]
        r = await client.get("/api/v1/tags", params={"q": "culture"})
        assert [t["name"] for t in r.json()] == ["BR01.PH.PV"]
        r = await client.get("/api/v1/tags", params={"site": "site2"})
        assert [t["name"] for t in r.json()] == ["BR02.TEMP.PV"]

        r = await client.get("/api/v1/tags/BR01.PH.PV")
        assert r.status_code == 200 and r.json()["unit"] == "pH"
        r = await client.get("/api/v1/tags/NO.SUCH.TAG")
        assert r.status_code == 404
        assert r.json() == {"detail": "tag 'NO.SUCH.TAG' not found"}
        r = await client.get("/api/v1/tags/NO.SUCH.TAG/recorded")
        assert r.status_code == 404 and "NO.SUCH.TAG" in r.json()["detail"]


async def test_recorded_values_typed_with_context_and_nonfinite_encoded(api_db, data):
    temp = data.tag("BR01.TEMP.PV", "float")
    on = data.tag("BR01.PUMP.ON", "bool", None)
    count = data.tag("BR01.COUNT", "int", None)
    phase = data.tag("BR01.PHASE", "string", None)
    ctx = data.context("site1", "BR01", "B-17", "growth", "mAb-1")
    # inserted out of order: the answer is ordered by time
    data.samples(temp, [
        (at(3), -math.inf, None, 0, ctx),
        (at(0), 37.25, None, 0, ctx),
        (at(1), math.nan, None, BAD, ctx),
        (at(2), math.inf, None, 0, None),
        (at(4), None, None, BAD, ctx),
    ])
    data.samples(on, [(at(0), 1.0, None, 0, ctx), (at(1), 0.0, None, 0, ctx)])
    data.samples(count, [(at(0), 12.0, None, 0, ctx)])
    data.samples(phase, [(at(0), None, "growth", 0, ctx)])
    window = {"start": iso(at(0)), "end": iso(at(10))}
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/tags/BR01.TEMP.PV/recorded", params=window)
        assert r.status_code == 200
        body = r.json()
        assert body["tag"] == "BR01.TEMP.PV" and body["unit"] == "degC" and body["truncated"] is False
        assert (body["start"], body["end"]) == (window["start"], window["end"])
        assert [s["value"] for s in body["samples"]] == [37.25, "NaN", "Infinity", "-Infinity", None]
        assert [s["ts"] for s in body["samples"]] == [iso(at(m)) for m in range(5)]
        first, nan_sample, no_ctx = body["samples"][:3]
        assert first == {"ts": "2026-11-26T08:00:00.000000Z", "value": 37.25, "quality": 0, "good": True,
                         "batch": "B-17", "phase": "growth", "unit": "BR01", "recipe": "mAb-1", "site": "site1"}
        assert (nan_sample["quality"], nan_sample["good"]) == (0x80000000, False)
        assert no_ctx["batch"] is None and no_ctx["site"] is None

        r = await client.get("/api/v1/tags/BR01.PUMP.ON/recorded", params=window)
        assert [s["value"] for s in r.json()["samples"]] == [True, False]
        r = await client.get("/api/v1/tags/BR01.COUNT/recorded", params=window)
        assert r.json()["samples"][0]["value"] == 12 and "12," in r.text.replace(" ", "")
        r = await client.get("/api/v1/tags/BR01.PHASE/recorded", params=window)
        assert r.json()["samples"][0]["value"] == "growth"


async def test_recorded_limit_truncation_and_half_open_range(api_db, data):
    tag = data.tag("BR01.DO.PV", "float", "%")
    data.samples(tag, [(at(m), float(m), None, 0, None) for m in range(10)])
    async with api_client(api_db) as client:
        url = "/api/v1/tags/BR01.DO.PV/recorded"
        r = await client.get(url, params={"start": iso(at(0)), "end": iso(at(10)), "limit": 4})
        body = r.json()
        assert [s["value"] for s in body["samples"]] == [0.0, 1.0, 2.0, 3.0] and body["truncated"] is True
        r = await client.get(url, params={"start": iso(at(0)), "end": iso(at(10)), "limit": 10})
        assert len(r.json()["samples"]) == 10 and r.json()["truncated"] is False
        # start inclusive, end exclusive; an offset is converted to UTC
        r = await client.get(url, params={"start": "2026-11-26T09:02:00+01:00", "end": iso(at(5))})
        assert [s["value"] for s in r.json()["samples"]] == [2.0, 3.0, 4.0]


async def test_recorded_default_range_is_the_last_hour(api_db, data):
    tag = data.tag("BR01.LIVE", "float")
    now = datetime.now(timezone.utc)
    data.samples(tag, [(now - timedelta(hours=2), 1.0, None, 0, None),
                       (now - timedelta(minutes=30), 2.0, None, 0, None)])
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/tags/BR01.LIVE/recorded")
        assert [s["value"] for s in r.json()["samples"]] == [2.0]
        r = await client.get("/api/v1/tags/BR01.LIVE/recorded", params={"start": "*-3h", "end": "now"})
        assert [s["value"] for s in r.json()["samples"]] == [1.0, 2.0]


async def test_bad_parameters_name_the_parameter(api_db, data):
    data.tag("BR01.TEMP.PV")
    url = "/api/v1/tags/BR01.TEMP.PV/recorded"
    async with api_client(api_db) as client:
        r = await client.get(url, params={"start": "yesterday"})
        assert r.status_code == 422
        assert r.json()["parameter"] == "start" and "yesterday" in r.json()["detail"]
        r = await client.get(url, params={"end": "2026-11-26T10:00:00"})
        assert r.status_code == 422
        assert r.json()["parameter"] == "end" and "no UTC designator" in r.json()["detail"]
        r = await client.get(url, params={"start": "now", "end": "*-1h"})
        assert r.status_code == 400
        assert r.json()["parameter"] == "start" and "is not before end" in r.json()["detail"]
        r = await client.get(url, params={"limit": 100001})
        assert r.status_code == 422
        assert r.json()["parameter"] == "limit" and "100000" in r.json()["detail"]
        r = await client.get(url, params={"limit": "many"})
        assert r.status_code == 422 and r.json()["parameter"] == "limit"
