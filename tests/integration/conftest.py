"""Fixtures shared by the integration tests (the service fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.test_edge_fixtures import Collector


@pytest.fixture
def collector(mqtt_url, topic_prefix):
    """Every message published under the test's topic prefix, decoded."""
    c = Collector(mqtt_url, topic_prefix)
    yield c
    c.close()
