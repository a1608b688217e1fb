"""GET /completeness, /quarantine, /edges, /events against a real database."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.test_api_fixtures import api_client, api_db, at, data, iso  # noqa: F401


def seed_log(data) -> None:
    # edge1/s1: seqs 1-2 lost at session start, 11-13 lost, 21-59 lost in an outage
    data.messages("edge1", "s1", [*range(3, 11), *range(14, 21), *range(60, 71)], samples=10)
    data.messages("edge2", "s2", range(1, 21), site="site2", samples=5)
    # an older session of edge1, entirely before the ranges asked for
    data.messages("edge1", "s0", range(1, 6), time_of=lambda n: at(-100 + n))


async def test_completeness_per_session_with_gaps_and_their_times(api_db, data):
    seed_log(data)
    data.event("edge1", "data-gap", at(6), at(5), at(6), tags=["BR01.TEMP.PV", "BR01.PH.PV"], source_id="gap-1",
               detail='{"dropped": 120}')
    data.event("edge1", "data-gap", at(200), at(199), at(200), source_id="gap-2")
    data.event("edge1", "source-down", at(7), source_id="down-1")
    # seq 12 and 13 arrived but were refused: they are in quarantine, not lost
    for seq in (12, 13, 13):
        data.quarantine("invalid-timestamp", b"{}", received=at(12), session="s1", seq=seq)
    data.quarantine("malformed", b"{}", received=at(12), edge="edge2", session="s2", seq=12)
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/completeness", params={"start": iso(at(0)), "end": iso(at(30))})
        assert r.status_code == 200
        body = r.json()
        assert (body["start"], body["end"]) == (iso(at(0)), iso(at(30)))
        assert body["complete"] is False
        assert (body["expected"], body["received"], body["missing"]) == (79, 35, 44)
        by_key = {(s["edge"], s["session"]): s for s in body["sessions"]}
        assert set(by_key) == {("edge1", "s1"), ("edge2", "s2")}
        s1 = by_key[("edge1", "s1")]
        assert (s1["first_seq"], s1["last_seq"], s1["expected"], s1["received"]) == (1, 59, 59, 15)
        assert s1["missing"] == [[1, 2], [11, 13], [21, 59]]
        assert s1["gaps"][0] == {"first_seq": 1, "last_seq": 2, "count": 2, "after": None, "before": iso(at(3))}
        assert s1["gaps"][1] == {"first_seq": 11, "last_seq": 13, "count": 3,
                                 "after": iso(at(10) + timedelta(seconds=30)), "before": iso(at(14))}
        assert (s1["quarantined"], s1["quarantined_count"]) == ([[12, 13]], 2)
        assert (s1["messages_in_range"], s1["samples"]) == (15, 150)
        assert (s1["first_time"], s1["last_time"]) == (iso(at(3)), iso(at(20) + timedelta(seconds=30)))
        assert s1["site"] == "site1"
        s2 = by_key[("edge2", "s2")]
        assert (s2["expected"], s2["received"], s2["missing"], s2["samples"]) == (20, 20, [], 100)
        assert s2["quarantined"] == []  # a received seq in quarantine too is not a gap
        (gap_event,) = body["data_gaps"]
        assert gap_event["source_id"] == "gap-1" and gap_event["type"] == "data-gap"
        assert gap_event["tags"] == ["BR01.TEMP.PV", "BR01.PH.PV"]
        assert (gap_event["start"], gap_event["end"]) == (iso(at(5)), iso(at(6)))
        assert gap_event["detail"] == {"dropped": 120}

        # a range inside the outage: nothing arrived, the lost messages are still reported
        r = await client.get("/api/v1/completeness",
                             params={"edge": "edge1", "start": iso(at(30)), "end": iso(at(40))})
        body = r.json()
        (s1,) = body["sessions"]
        assert (s1["first_seq"], s1["last_seq"], s1["received"], s1["missing"]) == (21, 59, 0, [[21, 59]])
        assert s1["messages_in_range"] == 0 and s1["first_time"] is None

        # a complete edge and range
        r = await client.get("/api/v1/completeness",
                             params={"edge": "edge2", "start": iso(at(0)), "end": iso(at(30))})
        body = r.json()
        assert body["complete"] is True and (body["expected"], body["received"]) == (20, 20)

        r = await client.get("/api/v1/completeness", params={"start": iso(at(30)), "end": iso(at(0))})
        assert r.status_code == 400 and r.json()["parameter"] == "start"


async def test_quarantine_listing_preview_filters_and_truncation(api_db, data):
    big = b'{"kind": "data", "samples": [' + b"9" * 5000 + b"]}"
    data.quarantine("malformed", b"\xff\xfenot json", received=at(1), detail="invalid JSON at byte 0")
    data.quarantine("undeclared-tag", b'{"tag": "X"}', received=at(2), detail="tag 'X' not declared",
                    session="s1", seq=4)
    data.quarantine("oversized", big, received=at(3), detail="payload exceeds 1 MiB")
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/quarantine")
        assert r.status_code == 200
        body = r.json()
        assert [m["reason"] for m in body["messages"]] == ["oversized", "undeclared-tag", "malformed"]
        assert body["truncated"] is False
        oversized, undeclared, malformed = body["messages"]
        assert oversized["size"] == len(big) and oversized["preview_truncated"] is True
        assert oversized["payload_preview"] == big[:2000].decode()
        assert malformed["payload_preview"] == "\ufffd\ufffdnot json"
        assert malformed["received"] == iso(at(1)) and malformed["topic"].endswith("/data")
        assert (undeclared["session"], undeclared["seq"], undeclared["edge"]) == ("s1", 4, "edge1")
        assert undeclared["detail"] == "tag 'X' not declared" and isinstance(undeclared["id"], int)

        r = await client.get("/api/v1/quarantine", params={"reason": "malformed"})
        assert [m["reason"] for m in r.json()["messages"]] == ["malformed"]
        r = await client.get("/api/v1/quarantine", params={"start": iso(at(2)), "end": iso(at(3))})
        assert [m["reason"] for m in r.json()["messages"]] == ["undeclared-tag"]
        r = await client.get("/api/v1/quarantine", params={"limit": 2})
        assert len(r.json()["messages"]) == 2 and r.json()["truncated"] is True


async def test_edges_and_events(api_db, data):
    data.edge("edge2", "offline", "s2", at(5), None)
    data.edge("edge1", "online", "s1", at(1), at(0))
    data.event("edge1", "source-down", at(10), source_id="e1")
    data.event("edge1", "source-up", at(12), source_id="e2")
    data.event("edge2", "data-gap", at(40), at(20), at(40), source_id="e3")
    async with api_client(api_db) as client:
        r = await client.get("/api/v1/edges")
        assert r.json() == [
            {"edge": "edge1", "site": "site1", "session": "s1", "state": "online",
             "changed_at": iso(at(1)), "last_birth": iso(at(0))},
            {"edge": "edge2", "site": "site1", "session": "s2", "state": "offline",
             "changed_at": iso(at(5)), "last_birth": None},
        ]
        window = {"start": iso(at(0)), "end": iso(at(30))}
        r = await client.get("/api/v1/events", params=window)
        body = r.json()
        # oldest first by the start of their time span; e3 spans 20..40 so it meets the window
        assert [e["source_id"] for e in body["events"]] == ["e1", "e2", "e3"]
        assert body["truncated"] is False
        r = await client.get("/api/v1/events", params={**window, "type": "data-gap"})
        assert [e["source_id"] for e in r.json()["events"]] == ["e3"]
        r = await client.get("/api/v1/events", params={**window, "edge": "edge1", "limit": 1})
        assert [e["source_id"] for e in r.json()["events"]] == ["e1"] and r.json()["truncated"] is True
        r = await client.get("/api/v1/events", params={"start": iso(at(11)), "end": iso(at(12))})
        assert [e["source_id"] for e in r.json()["events"]] == []
