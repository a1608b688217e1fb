"""`batchwire demo` as a user runs it: no options but a port and a data directory, so it
starts its own embedded PostgreSQL and in-process MQTT broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.timeout(300)


def _poll(fn, *, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited with {proc.returncode} while waiting for {what}")
        try:
            result = fn()
            if result:
                return result
        except httpx.HTTPError as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def test_demo_starts_serves_fresh_data_and_stops_cleanly(tmp_path):
    port = free_port()
    log = open(tmp_path / "demo.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "historian.cli", "demo", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        def tags():
            r = httpx.get(f"{base}/tags", timeout=5)
            names = {t["name"] for t in r.json()} if r.status_code == 200 else set()
            return names if any(n.startswith("BR01.") for n in names) else None

        names = _poll(tags, timeout=120, what="bioreactor tags in /tags", proc=proc)
        assert "BR01.TEMP" in names

        def fresh():
            r = httpx.get(f"{base}/tags/BR01.TEMP/recorded", params={"start": "*-5m"}, timeout=5)
            if r.status_code != 200:
                return None
            samples = [s for s in r.json()["samples"] if s["batch"] and s["phase"]]
            return samples or None

        samples = _poll(fresh, timeout=120, what="fresh BR01.TEMP samples with batch and phase",
                        proc=proc)
        assert isinstance(samples[-1]["value"], float)
        r = httpx.get(f"{base}/health", timeout=5)
        assert r.status_code == 200 and r.json()["database"]["ok"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.seek(0)
        output = log.read()
    assert code == 0, output
    assert "batchwire demo is running" in output
    assert "stopping" in output
