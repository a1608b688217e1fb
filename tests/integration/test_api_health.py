"""GET /health with a live database, with status callbacks, and with no database at all."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.conftest import free_port
from tests.integration.test_api_fixtures import api_client, api_db, data  # noqa: F401


async def test_health_ok_with_ingest_derived_from_the_log(api_db, data):
    committed = datetime.now(timezone.utc)
    data.messages("edge1", "s1", range(1, 4), committed=committed, samples=7)
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert body["database"]["ok"] is True and body["database"]["latency_ms"] >= 0
        assert body["broker"] is None
        assert body["ingest"]["source"] == "ingest_log"
        assert body["ingest"]["last_commit"] == committed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert body["ingest"]["messages_last_minute"] == 3
        assert body["ingest"]["samples_last_minute"] == 21


async def test_health_degraded_when_a_component_reports_not_ok(api_db):
    def broker() -> dict:
        return {"ok": False, "connected": False, "url": "mqtt://127.0.0.1:1883"}

    def ingest() -> dict:
        return {"ok": True, "messages": 12}

    async with api_client(api_db, broker_status=broker, ingest_status=ingest) as client:
        r = await client.get("/api/v1/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "degraded"
        assert body["broker"] == broker() and body["ingest"] == ingest()


async def test_health_reports_a_failing_status_callback(api_db):
    def broken() -> dict:
        raise RuntimeError("ingest loop not started")

    async with api_client(api_db, ingest_status=broken) as client:
        body = (await client.get("/api/v1/health")).json()
        assert body["status"] == "degraded"
        assert body["ingest"]["ok"] is False and "ingest loop not started" in body["ingest"]["error"]


async def test_database_unreachable_is_down_and_503():
    dsn = f"postgresql://root@127.0.0.1:{free_port()}/batchwire?connect_timeout=2"
    async with api_client(dsn, health_timeout=0.5, db_timeout=0.5) as client:
        r = await client.get("/api/v1/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down"
        assert body["database"]["ok"] is False and body["database"]["latency_ms"] is None
        assert "database unavailable" in body["database"]["error"]
        assert body["ingest"] is None
        r = await client.get("/api/v1/tags")
        assert r.status_code == 503 and "database unavailable" in r.json()["detail"]


async def test_database_without_schema_is_down(fresh_db):
    async with api_client(fresh_db) as client:
        r = await client.get("/api/v1/health")
        assert r.status_code == 503 and "batchwire db migrate" in r.json()["database"]["error"]
        r = await client.get("/api/v1/tags")
        assert r.status_code == 503 and "no batchwire schema" in r.json()["detail"]


async def test_ingest_report_is_made_json_safe_and_gives_broker_connectivity(api_db):
    last = datetime(2026, 11, 26, 22, 45, 40, 123456, tzinfo=timezone.utc)

    def ingest() -> dict:  # the shape historian.ingest.Ingestor.status() returns
        return {"connected": False, "messages": 3, "last_commit": last, "rate": float("nan"),
                "last_error": None, "worker": "w1"}

    async with api_client(api_db, ingest_status=ingest) as client:
        body = (await client.get("/api/v1/health")).json()
        assert body["status"] == "degraded"
        assert body["ingest"]["last_commit"] == "2026-11-26T22:45:40.123456Z"
        assert body["ingest"]["rate"] == "NaN"
        assert body["broker"] == {"ok": False, "connected": False, "source": "ingest"}
