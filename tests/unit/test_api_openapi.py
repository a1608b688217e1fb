"""The API's OpenAPI document and docs page (no database needed: the pool opens in the lifespan)."""

from __future__ import annotations

import httpx

from historian.api import create_app

PATHS = {
    "/api/v1/health", "/api/v1/tags", "/api/v1/tags/{tag}", "/api/v1/tags/{tag}/recorded",
    "/api/v1/batches", "/api/v1/batches/{batch}", "/api/v1/batches/{batch}/completeness",
    "/api/v1/quarantine", "/api/v1/completeness", "/api/v1/edges", "/api/v1/events",
}


def test_every_endpoint_is_documented_with_a_response_schema():
    doc = create_app("postgresql://nobody@127.0.0.1:1/none").openapi()
    assert set(doc["paths"]) == PATHS
    for path, item in doc["paths"].items():
        ok = item["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"], path
    params = {p["name"]: p for p in doc["paths"]["/api/v1/tags/{tag}/recorded"]["get"]["parameters"]}
    assert {"tag", "start", "end", "limit"} <= set(params)
    assert "*-1h" in params["start"]["description"]
    assert params["limit"]["schema"]["maximum"] == 100000


async def test_docs_page_is_served():
    app = create_app("postgresql://nobody@127.0.0.1:1/none")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as client:
        r = await client.get("/docs")
        assert r.status_code == 200 and "swagger" in r.text.lower()
