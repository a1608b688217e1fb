"""Fault suite: the broker and the database stop under load and come back.

The third cuts the network between ingest and PostgreSQL through the fault proxy.

Each test owns the service it stops (a Mosquitto or a PostgreSQL cluster started here,
never the machine's shared ones) and passes when the database holds exactly the samples
the simulated equipment produced: 0 lost, 0 duplicated, with no manual action.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.faults.harness import Pipeline, conclude, now_us
from tests.faults.proxy import FaultProxy
from tests.faults.services import OwnMosquitto, OwnPostgres

pytestmark = [pytest.mark.slow]

BROKER_OUTAGE_S = 30  # the issue asks for 30-60 s
DB_OUTAGE_S = 20
DB_PARTITION_S = 30


@pytest.mark.timeout(420)
@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_broker_stopped_and_restarted(how, fresh_db, tmp_path, tmp_path_factory):
    """``stop``: SIGTERM, the broker saves its persistence. ``kill``: SIGKILL, what it held
    since its last autosave (1 s) is gone, PUBACKed or not: only the end-to-end
    acknowledgement makes the edge send it again."""
    broker = OwnMosquitto(tmp_path / "mosquitto")
    broker.start()
    pipe = Pipeline(tmp_path, db=fresh_db, broker=broker.url)
    try:
        await pipe.start()
        await pipe.run_for(10)
        await asyncio.to_thread(broker.stop if how == "stop" else broker.kill)
        await pipe.run_for(BROKER_OUTAGE_S)
        await asyncio.to_thread(broker.start)
        end, end_us = time.monotonic(), now_us()
        recovery = await pipe.recovery(end, end_us)
        await pipe.run_for(5)
        name = "broker stopped" if how == "stop" else "broker SIGKILL"
        await conclude(pipe, f"{name} {BROKER_OUTAGE_S}s", basetemp=tmp_path_factory.getbasetemp(),
                       recovery_s=recovery, detail={"outage_s": BROKER_OUTAGE_S})
    finally:
        await pipe.close()
        broker.kill()


@pytest.mark.skipif(not OwnPostgres.available(), reason="PostgreSQL server binaries (initdb) not installed")
@pytest.mark.timeout(420)
async def test_postgres_stopped_immediately_and_restarted(tmp_path, tmp_path_factory):
    pg = OwnPostgres(tmp_path / "pg")
    broker = OwnMosquitto(tmp_path / "mosquitto")
    pipe = None
    try:
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        broker.start()
        pipe = Pipeline(tmp_path, db=pg.dsn, broker=broker.url)
        await pipe.start()
        await pipe.run_for(10)
        await asyncio.to_thread(pg.stop, "immediate")
        await pipe.run_for(DB_OUTAGE_S)
        await asyncio.to_thread(pg.start)
        end, end_us = time.monotonic(), now_us()
        recovery = await pipe.recovery(end, end_us)
        await pipe.run_for(5)
        await conclude(pipe, f"postgres -m immediate {DB_OUTAGE_S}s",
                       basetemp=tmp_path_factory.getbasetemp(), recovery_s=recovery,
                       detail={"outage_s": DB_OUTAGE_S})
    finally:
        if pipe is not None:
            await pipe.close()
        broker.kill()
        await asyncio.to_thread(pg.destroy)


@pytest.mark.timeout(420)
async def test_ingest_postgres_partition(fresh_db, tmp_path, tmp_path_factory):
    """The network between ingest and PostgreSQL goes silent (no reset: half-open
    connections, a query that never gets its answer) and comes back."""
    broker = OwnMosquitto(tmp_path / "mosquitto")
    broker.start()
    pipe = None
    db = urlsplit(fresh_db)
    try:
        async with FaultProxy(db.hostname or "127.0.0.1", db.port or 5432) as proxy:
            via_proxy = urlunsplit(db._replace(netloc=f"{db.username}@127.0.0.1:{proxy.port}"))
            pipe = Pipeline(tmp_path, db=fresh_db, ingest_db=via_proxy, broker=broker.url)
            await pipe.start()
            await pipe.run_for(10)
            proxy.partition()
            await pipe.run_for(DB_PARTITION_S)
            proxy.heal()
            end, end_us = time.monotonic(), now_us()
            recovery = await pipe.recovery(end, end_us)
            await pipe.run_for(5)
            await conclude(pipe, f"ingest-postgres partition {DB_PARTITION_S}s",
                           basetemp=tmp_path_factory.getbasetemp(), recovery_s=recovery,
                           detail={"partition_s": DB_PARTITION_S, "proxy_resets": proxy.stats.resets})
    finally:
        if pipe is not None:
            await pipe.close()
        broker.kill()
