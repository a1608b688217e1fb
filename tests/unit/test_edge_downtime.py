"""The data-gap event of an agent restart (pure)."""

from __future__ import annotations

from edge.downtime import Downtime


def test_event_spans_each_tags_hole_and_names_the_tags():
    d = Downtime({"A": 100, "B": 150, "C": 120}, restarted=500)
    assert not d.observe("A", 600, repeat=False)
    assert not d.observe("A", 700, repeat=False)  # only the first report counts
    assert not d.observe("X", 650, repeat=False)  # a tag not captured before: no hole
    assert not d.observe("B", 620, repeat=False)
    assert d.observe("C", 120, repeat=True)  # unchanged: no hole
    ev = d.event(edge="gw", site="s", session="S1", now_us=900)
    assert ev.type == "data-gap" and ev.id == "S1-restart-500"
    assert (ev.start, ev.end, ev.tags) == (100, 620, ("A", "B"))
    assert ev.detail["reason"] == "edge-restart"
    assert ev.detail["ranges"] == {"A": [100, 600], "B": [150, 620]}
    assert ev.detail["unchanged"] == ["C"] and ev.detail["not_seen"] == []


def test_silent_tags_reach_the_event_time():
    d = Downtime({"A": 100, "B": 150}, restarted=500)
    d.observe("A", 600, repeat=False)
    assert not d.complete and d.observed
    ev = d.event(edge="gw", site="s", session="S1", now_us=900)
    assert ev.detail["not_seen"] == ["B"] and ev.detail["ranges"]["B"] == [150, 900] and ev.end == 900


def test_all_unchanged_is_no_event():
    d = Downtime({"A": 100}, restarted=500)
    assert d.observe("A", 100, repeat=True)
    assert d.event(edge="gw", site="s", session="S1", now_us=900) is None


def test_resume_merges_an_unrecorded_restart_and_ignores_unknown_tags():
    assert Downtime.resume(None, {}, ["A"], restarted=5) is None
    assert Downtime.resume(None, {"gone": 3}, ["A"], restarted=5) is None
    first = Downtime.resume(None, {"A": 100, "gone": 90}, ["A", "B"], restarted=500)
    assert first.before == {"A": 100} and first.restarts == 1
    # stopped before its event was committed; A and B captured meanwhile
    second = Downtime.resume(first.to_record(), {"A": 700, "B": 710}, ["A", "B"], restarted=900)
    assert second.before == {"A": 100, "B": 710}
    assert second.restarted == 500 and second.restarts == 2
