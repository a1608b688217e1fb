"""Runner lifecycle and the command line, against real sockets and a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua import Client

from simulators.faults import FaultSpec
from simulators.plant import default_plant
from simulators.runner import PlantRunner
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_cancellation_stops_every_server():
    cfg = default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=free_port())
    started = asyncio.Event()

    async def run():
        async with PlantRunner(cfg) as plant, Client(plant.opcua_endpoint) as client:
            await client.nodes.server_state.read_value()
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for port in (cfg.servers.opcua_port, cfg.servers.modbus_port, cfg.servers.control_port):
        assert port_is_free(port), port


async def test_port_in_use_is_reported_with_the_setting():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = default_plant(opcua_port=free_port(), modbus_port=port, control_port=0)
        with pytest.raises(RuntimeError, match="servers.modbus_port"):
            async with PlantRunner(cfg):
                pass
    assert port_is_free(cfg.servers.opcua_port)


async def test_scheduled_faults_start_and_end_at_their_simulated_times():
    cfg = default_plant(opcua_port=free_port(), modbus_port=free_port(), control_port=0, speed=100.0)
    cfg = cfg.model_copy(update={"publish_interval": 0.2, "faults": [
        *cfg.faults, FaultSpec(kind="frozen", target="BR01.TEMP", at=60, duration=120)]})
    async with PlantRunner(cfg) as plant:
        await plant.wait_sim(200.0)
    start, end = [r for r in plant.fault_log if r.kind == "frozen"]
    assert (start.event, end.event) == ("start", "end")
    assert (start.sim_time - plant.start).total_seconds() == 60.0
    assert (end.sim_time - plant.start).total_seconds() == 180.0


def test_cli_run_prints_endpoints_triggers_faults_and_stops_on_ctrl_c(tmp_path):
    opc, mb, ctl = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "run", "-c", str(ROOT / "deploy/examples/demo-plant.toml"),
         "--opcua-port", str(opc), "--modbus-port", str(mb), "--control-port", str(ctl), "--seed", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        assert f"opc.tcp://127.0.0.1:{opc}/batchwire/" in text
        assert f"control  127.0.0.1:{ctl}" in text
        fault = subprocess.run(
            [sys.executable, "-m", "simulators", "fault", "spike", "BR01.TEMP", "--magnitude", "5",
             "--duration", "30s", "--port", str(ctl)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert fault.returncode == 0, fault.stdout + fault.stderr
        assert json.loads(fault.stdout)["fault_id"] == 1
        listed = subprocess.run([sys.executable, "-m", "simulators", "fault", "--list", "--port", str(ctl)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert '"kind": "spike"' in listed.stdout
        bad = subprocess.run([sys.executable, "-m", "simulators", "fault", "frozen", "BR09.TEMP", "--port",
                              str(ctl)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "BR09.TEMP" in bad.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "stopped." in out


def test_cli_rejects_a_bad_plant_file_with_exit_code_2(tmp_path):
    bad = tmp_path / "plant.toml"
    bad.write_text("speed = 0\n")
    res = subprocess.run([sys.executable, "-m", "simulators", "run", "-c", str(bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "speed" in res.stderr


def test_fault_without_a_running_plant_fails_cleanly():
    res = subprocess.run([sys.executable, "-m", "simulators", "fault", "frozen", "BR01.TEMP", "--port",
                          str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "no plant control port" in res.stderr
