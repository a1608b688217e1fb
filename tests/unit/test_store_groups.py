"""Pure parts of tag-group retention and sizing: the plan, compress-after, chunk spans."""

from __future__ import annotations

from datetime import timedelta

import pytest

from historian.store.retention import plan_compress_after, plan_retention
from historian.store.sizing import chunk_interval, partition_days

D = timedelta(days=1)


def test_horizon_is_the_longest_retention_and_shorter_ones_are_deleted_per_tag():
    p = plan_retention({1: 30 * D, 2: 400 * D, 3: 400 * D})
    assert p.horizon == 400 * D and p.deletes == {1: 30 * D}


def test_a_tag_kept_forever_means_no_partition_is_dropped():
    p = plan_retention({1: 30 * D, 2: None})
    assert p.horizon is None and p.deletes == {1: 30 * D}


def test_the_default_bounds_the_horizon_even_without_tags():
    assert plan_retention({}).horizon is None
    assert plan_retention({}, 400 * D).horizon == 400 * D
    p = plan_retention({1: 30 * D}, 400 * D)  # tag 1 in a 30-day group, default 400 days
    assert p.horizon == 400 * D and p.deletes == {1: 30 * D}


def test_compress_after_is_the_shortest_asked_or_the_default():
    assert plan_compress_after([], None) == 2 * D
    assert plan_compress_after([5 * D, 3 * D], None) == 3 * D
    assert plan_compress_after([None, 5 * D], None) == 2 * D  # a tag on the default
    assert plan_compress_after([None], 7 * D) == 7 * D
    assert plan_compress_after([12 * D], 7 * D) == 12 * D  # every tag is in a 12-day group


@pytest.mark.parametrize("rate, interval", [
    (100, timedelta(days=2)), (280, timedelta(days=1)), (1_000, timedelta(hours=6)),
    (5_000, timedelta(hours=1)), (500_000, timedelta(hours=1)), (10, timedelta(days=7))])
def test_chunk_interval_keeps_about_25M_samples_per_chunk(rate, interval):
    assert chunk_interval(rate) == interval
    assert interval == timedelta(hours=1) or rate * interval.total_seconds() <= 25_000_000


@pytest.mark.parametrize("rate, days", [(100_000, 1), (10_000, 1), (1_000, 7), (100, 28), (3_000, 3)])
def test_partition_days(rate, days):
    assert partition_days(rate) == days


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="expected rate"):
        chunk_interval(0)
