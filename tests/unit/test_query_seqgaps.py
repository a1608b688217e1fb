"""Completeness arithmetic over sequence numbers, against a set-based oracle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from historian.query.seqgaps import (
    Gap,
    Island,
    gaps_between,
    intersect,
    merge_ranges,
    missing_ranges,
    range_count,
    session_completeness,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def as_set(ranges) -> set[int]:
    return {s for a, b in ranges for s in range(a, b + 1)}


def as_ranges(seqs: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


ranges_st = st.lists(st.tuples(st.integers(1, 300), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])),
                     max_size=30)


@given(ranges_st)
def test_merge_ranges_is_the_same_set_sorted_disjoint_and_not_touching(ranges):
    merged = merge_ranges(ranges)
    assert as_set(merged) == as_set(ranges)
    for (a1, b1), (a2, b2) in zip(merged, merged[1:]):
        assert b1 + 1 < a2
    assert all(a <= b for a, b in merged)


@given(ranges_st, st.integers(1, 320), st.integers(0, 60))
def test_missing_ranges_match_the_set_difference(ranges, first, span):
    last = first + span
    got = missing_ranges(ranges, first, last)
    assert as_set(got) == set(range(first, last + 1)) - as_set(ranges)
    assert got == as_ranges(as_set(got))  # maximal, sorted runs
    assert range_count(got) + len(as_set(ranges) & set(range(first, last + 1))) == last - first + 1


@given(ranges_st)
def test_missing_ranges_count_from_one_up_to_the_highest_received(ranges):
    got = missing_ranges(ranges)
    received = as_set(ranges)
    expected = set(range(1, max(received) + 1)) - received if received else set()
    assert as_set(got) == expected


def test_missing_ranges_examples():
    assert missing_ranges([(3, 5), (8, 8), (9, 10)]) == [(1, 2), (6, 7)]
    assert missing_ranges([(1, 4)], 1, 6) == [(5, 6)]
    assert missing_ranges([], 1, 3) == [(1, 3)]
    assert missing_ranges([]) == []


def islands_for(seqs: set[int]) -> list[Island]:
    """Islands with monotonic times: message n covers minute n (start) to n + 30 s."""
    return [Island(a, b, T0 + timedelta(minutes=a), T0 + timedelta(minutes=b, seconds=30))
            for a, b in as_ranges(seqs)]


def msg_time(seq: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(minutes=seq), T0 + timedelta(minutes=seq, seconds=30)


@given(st.sets(st.integers(1, 120), min_size=1, max_size=80), st.integers(-5, 130), st.integers(1, 60))
def test_session_completeness_accounts_for_every_seq_of_its_window(seqs, start_min, span_min):
    start = T0 + timedelta(minutes=start_min)
    end = start + timedelta(minutes=span_min)
    in_range = [s for s in seqs if msg_time(s)[0] < end and msg_time(s)[1] >= start]
    bounds = (min(in_range), max(in_range)) if in_range else None
    result = session_completeness(islands_for(seqs), bounds, start, end)
    if result is None:
        assert not in_range
        return
    window = set(range(result.first_seq, result.last_seq + 1))
    missing = as_set(result.missing)
    assert result.expected == len(window) == result.received + len(missing)
    assert result.received == len(window & seqs)
    assert missing == window - seqs
    assert set(in_range) <= window
    # a lost message whose neighbours put it inside the range is reported
    for s in set(range(1, max(seqs) + 1)) - seqs:
        lo, hi = msg_time(s)
        before = [x for x in seqs if x < s]
        after = [x for x in seqs if x > s]
        bound_lo = msg_time(max(before))[1] if before else msg_time(min(after))[0]
        bound_hi = msg_time(min(after))[0]
        if bound_lo < end and bound_hi >= start:
            assert s in missing


def test_gaps_carry_the_times_of_their_neighbours():
    islands = islands_for({3, 4, 7, 8})
    assert gaps_between(islands) == [
        Gap(1, 2, None, T0 + timedelta(minutes=3)),
        Gap(5, 6, T0 + timedelta(minutes=4, seconds=30), T0 + timedelta(minutes=7)),
    ]


def test_an_outage_spanning_the_whole_range_is_reported():
    islands = islands_for(set(range(1, 11)) | set(range(100, 111)))
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=40)
    result = session_completeness(islands, None, start, end)
    assert result is not None
    assert result.missing == [(11, 99)]
    assert (result.expected, result.received) == (89, 0)


def test_nothing_in_range_and_no_gap_means_no_entry():
    islands = islands_for(set(range(1, 11)))
    assert session_completeness(islands, None, T0 + timedelta(hours=5), T0 + timedelta(hours=6)) is None


@given(ranges_st, st.lists(st.integers(-5, 330), max_size=40))
def test_intersect_matches_the_set_intersection(ranges, seqs):
    got = intersect(ranges, seqs)
    assert as_set(got) == as_set(ranges) & set(seqs)
    assert got == as_ranges(as_set(got))
