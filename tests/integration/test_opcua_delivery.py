"""Every value the simulated plant writes over OPC UA reaches the edge, over several sessions;
and when a server queue does overflow, the edge's record says so.

The plant records each value update it writes (tag, SourceTimestamp, value); the edge's OPC UA
sources (one session each, as the agent runs them) record each reading; the two are compared
per (tag, source timestamp).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from edge.contract.messages import to_micros
from edge.sources.opcua import overflowed
from simulators.runner import PlantRunner
from tests.bench.bench_opcua_sessions import (ChildPlant, EdgeSession, WriteLog, compare, now_micros, plant_config,
                                              signals_of, split)
from tests.conftest import free_port


async def _wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _started(plant: PlantRunner, sessions: list[EdgeSession]) -> int:
    """Start the sessions; return the simulated time (µs) from which every write must arrive:
    the first publish cycle that began after every session was monitoring."""
    await asyncio.gather(*(s.start() for s in sessions))
    await plant.wait_ticks(1)
    return to_micros(plant.sim_time)


def _merged(sessions: list[EdgeSession]) -> dict:
    merged: dict = {}
    for s in sessions:
        for tag, values in s.received.by_tag.items():
            merged.setdefault(tag, {}).update(values)
    return merged


def _assert_monitoring_as_configured(sessions: list[EdgeSession], queue_size: int) -> None:
    for s in sessions:
        assert s.source.revised_queue_size == queue_size          # the server honoured the queue
        assert s.source.overflows == 0
        assert not any(overflowed(q) for qs in s.received.qualities.values() for q in qs.values())


@pytest.mark.slow
async def test_three_sessions_in_the_plant_process_receive_every_value_over_60_updates():
    plant = PlantRunner(plant_config(bioreactors=3, opcua_port=free_port(), publish_interval=1.0))
    log = WriteLog()
    async with plant:
        plant.opcua_server.on_written = log.record
        groups = split(signals_of(plant.catalog), 3)           # one session per bioreactor
        sessions = [EdgeSession(f"br{i + 1}", plant.opcua_endpoint, g, publishing_interval=0.5, queue_size=10)
                    for i, g in enumerate(groups)]
        try:
            t0 = await _started(plant, sessions)
            await plant.wait_ticks(60, timeout=120)
            written = log.between(t0, to_micros(plant.sim_time))
            await _wait_for(lambda: compare(written, _merged(sessions)).missing == {}, timeout=30,
                            what="every written value at the edge")
        finally:
            for s in sessions:
                await s.stop()
    delivery = compare(written, _merged(sessions))
    assert log.reused_timestamps == 0
    assert max(len(v) for v in written.values()) >= 60       # 60 simulated updates
    assert delivery.delivered == delivery.written >= 60 * 3 * 10 and delivery.wrong_value == 0
    assert [s.source.connections for s in sessions] == [1, 1, 1]
    _assert_monitoring_as_configured(sessions, 10)


@pytest.mark.slow
async def test_five_sessions_receive_every_value_from_a_plant_process_that_stalls():
    """The plant runs in its own process (as ``sim run`` does) and its event loop is blocked for
    2.5 s every 12 s, as a server busy with a large publish is: no OPC UA session gives up on
    it, and every value it writes over 60 updates reaches the edge."""
    async with ChildPlant(5, publish_interval=1.0, stall_every=12.0, stall_for=2.5) as plant:
        sessions = [EdgeSession(f"br{i + 1}", plant.endpoint, g, publishing_interval=0.5, queue_size=10)
                    for i, g in enumerate(split(plant.tags, 5))]
        try:
            await asyncio.gather(*(s.start() for s in sessions))
            # simulated time from which every write was made after all sessions were monitoring
            # (plant.offset overestimates wall - simulated time by at most one update)
            t0 = now_micros() - plant.offset + 1_000_000

            async def updates_since_t0() -> int:
                log = await plant.writes()
                return max((len([ts for ts in w if ts >= t0]) for w in log.by_tag.values()), default=0)

            deadline = time.monotonic() + 150
            while await updates_since_t0() < 60:
                assert time.monotonic() < deadline, "the plant stopped updating"
                await asyncio.sleep(1.0)
            log = await plant.writes()
            written = log.between(t0, max(max(w) for w in log.by_tag.values()))
            await _wait_for(lambda: compare(written, _merged(sessions)).missing == {}, timeout=30,
                            what="every written value at the edge")
        finally:
            for s in sessions:
                await s.stop()
    delivery = compare(written, _merged(sessions))
    assert log.reused_timestamps == 0
    assert delivery.delivered == delivery.written >= 60 * 5 * 10 and delivery.wrong_value == 0
    # the plant did stall: some consecutive updates are more than 2 s apart
    stamps = sorted(max(written.values(), key=len))
    assert sum(1 for a, b in zip(stamps, stamps[1:]) if b - a > 2_000_000) >= 3
    assert [s.source.connections for s in sessions] == [1] * 5      # no session was dropped
    _assert_monitoring_as_configured(sessions, 10)


async def test_server_queue_overflow_is_flagged_on_the_sample_after_the_gap():
    """A client that publishes far slower than the plant writes (2 s against 10 writes/s) with a
    queue of 2 loses values; each gap is followed by a sample whose quality carries the
    Overflow InfoBit, and the source counts it."""
    plant = PlantRunner(plant_config(bioreactors=1, opcua_port=free_port(), publish_interval=0.1))
    log = WriteLog()
    async with plant:
        plant.opcua_server.on_written = log.record
        tags = [t for t in signals_of(plant.catalog) if t[0] in ("BR01.TEMP", "BR01.PH", "BR01.DO", "BR01.AGIT")]
        session = EdgeSession("slow", plant.opcua_endpoint, tags, publishing_interval=2.0, queue_size=2)
        try:
            t0 = await _started(plant, [session])
            await _wait_for(lambda: session.source.overflows >= 3 * len(tags), timeout=30,
                            what="overflows on every tag")
        finally:
            await session.stop()
    assert session.source.revised_queue_size == 2
    assert log.reused_timestamps == 0
    written = {tag: w for tag, w in log.between(t0, 2 ** 63).items() if tag in {t[0] for t in tags}}
    assert len(written) == len(tags)
    checked_gaps = 0
    for tag, writes in written.items():
        got = session.received.by_tag.get(tag, {})
        flags = session.received.qualities.get(tag, {})
        last = max(got)
        for ts in sorted(writes):
            if ts > last:
                break
            if ts in got:
                assert got[ts] == writes[ts]
                continue
            after = min(t for t in got if t > ts)       # the first sample the edge got after the gap
            assert overflowed(flags.get(after, 0)), f"{tag}: value at {ts} lost without an Overflow flag"
            checked_gaps += 1
        flagged = [t for t, q in flags.items() if overflowed(q)]
        assert session.source.overflows_by_tag[tag] == len(flagged)
    assert checked_gaps > 0


@pytest.mark.parametrize("code, expected", [
    (0x00000480, True),                # Good, InfoType DataValue, Overflow
    (0x40000480, True),                # Uncertain with the same info bits
    (0x00000400, False),               # InfoType DataValue, no Overflow
    (0x00000080, False),               # bit 7 without InfoType DataValue means nothing
    (0x808A0000, False),               # BadNotConnected
    (0x00000000, False),
])
def test_overflow_is_read_from_the_info_bits(code, expected):
    assert overflowed(code) is expected
