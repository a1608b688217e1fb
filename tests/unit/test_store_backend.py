"""Backend choice from what the server reports (pure)."""

from __future__ import annotations

import pytest

from historian.store.backend import Backend, choose_backend, preloaded_libraries


@pytest.mark.parametrize("setting, names", [
    ("", []),
    ("timescaledb", ["timescaledb"]),
    ("pg_stat_statements, timescaledb", ["pg_stat_statements", "timescaledb"]),
    ('"timescaledb" , auto_explain', ["timescaledb", "auto_explain"]),
    ("$libdir/timescaledb.so", ["timescaledb"]),
    ("TimescaleDB,", ["timescaledb"]),
])
def test_preloaded_libraries_parses_the_setting(setting, names):
    assert preloaded_libraries(setting) == names


def test_installed_extension_wins():
    assert choose_backend(installed=True, available=True, preload_setting="")[0] is Backend.TIMESCALEDB


@pytest.mark.parametrize("setting", ["timescaledb", "pg_stat_statements,timescaledb", "timescaledb-2.29.2"])
def test_available_and_preloaded_is_timescaledb(setting):
    backend, why = choose_backend(installed=False, available=True, preload_setting=setting)
    assert backend is Backend.TIMESCALEDB and "preloaded" in why


@pytest.mark.parametrize("setting", ["", "pg_stat_statements", "timescaledb_toolkit", "not_timescaledb"])
def test_available_but_not_preloaded_is_plain_with_the_reason(setting):
    backend, why = choose_backend(installed=False, available=True, preload_setting=setting)
    assert backend is Backend.PLAIN
    assert why == ("timescaledb is available but not in shared_preload_libraries; "
                   "using plain PostgreSQL partitions")


def test_not_available_is_plain():
    backend, why = choose_backend(installed=False, available=False, preload_setting="timescaledb")
    assert backend is Backend.PLAIN and "not available" in why
