"""Shared fixtures: the machine's real PostgreSQL and Mosquitto.

``BATCHWIRE_TEST_PG`` (default ``postgresql://root@127.0.0.1:5432/postgres``) names a server
where the tests may create databases; ``BATCHWIRE_TEST_MQTT`` (default
``mqtt://127.0.0.1:1883``) a broker. Tests that need a service skip with the reason when
it cannot be reached. Each test session creates its own database and drops it afterwards;
MQTT tests use a unique topic prefix so concurrent runs cannot see each other's messages.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ADMIN_DSN = os.environ.get("BATCHWIRE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("BATCHWIRE_TEST_MQTT", "mqtt://127.0.0.1:1883")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _dsn_with_db(dsn: str, db: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + db))


def create_database(prefix: str = "bwtest") -> str:
    """Create a fresh empty database on the test server; return its DSN."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _dsn_with_db(PG_ADMIN_DSN, name)


def drop_database(dsn: str) -> None:
    import psycopg

    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin DSN of the test PostgreSQL server (skips when unreachable)."""
    parts = urlsplit(PG_ADMIN_DSN)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN} (set BATCHWIRE_TEST_PG)")
    return PG_ADMIN_DSN


@pytest.fixture
def fresh_db(pg_server) -> str:
    """DSN of a new, empty database, dropped after the test."""
    dsn = create_database()
    yield dsn
    drop_database(dsn)


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """URL of the test MQTT broker (skips when unreachable)."""
    parts = urlsplit(MQTT_URL)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 1883):
        pytest.skip(f"MQTT broker not reachable at {MQTT_URL} (set BATCHWIRE_TEST_MQTT)")
    return MQTT_URL


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test (or test run) uses."""
    return f"bwtest-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
