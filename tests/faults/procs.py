"""The edge agent and the historian ingest as real processes a fault test can SIGKILL.

Both run through the ``batchwire`` command line exactly as an operator starts them
(``python -m historian.cli …``) from the repository root; their output goes to a log file
in the test's directory so a failure can be read afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Proc:
    """One long-running command; :meth:`start` again after :meth:`kill` is a restart."""

    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        log = self.log_path.open("ab")
        log.write(f"---- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "historian.cli", *self.argv], cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a power cut of the process)."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.kills += 1

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not end in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def ingest_process(workdir: Path, *, db: str, broker: str, prefix: str,
                   worker_id: str = "fault-ingest") -> Proc:
    """A historian ingest worker with a stable id (persistent MQTT session, as deployed)."""
    return Proc("ingest", ["historian", "ingest", "--db", db, "--broker", broker,
                           "--topic-prefix", prefix, "--worker-id", worker_id],
                workdir / "ingest.log")


def edge_config(*, edge: str, site: str, outbox: Path, broker: str, prefix: str, endpoint: str,
                namespace: str, tags: list[str], publishing_interval: float = 0.25) -> str:
    """The TOML an operator would write for the load server (metadata given in full, so the
    agent reads nothing but values from the server)."""
    lines = [
        "[edge]", f'id = "{edge}"', f'site = "{site}"', f'data_dir = "{outbox}"', "",
        "[mqtt]", f'url = "{broker}"', f'topic_prefix = "{prefix}"',
        "max_samples_per_message = 50", 'max_batch_delay = "250ms"', 'ack_timeout = "10s"',
        "keepalive = 10", 'connect_timeout = "5s"', 'reconnect_delay_max = "4s"', "",
        "[[opcua]]", 'name = "load"', f'endpoint = "{endpoint}"', f'namespace_uri = "{namespace}"',
        f"publishing_interval = {publishing_interval}", "queue_size = 200", "",
    ]
    for t in tags:
        lines += ["[[opcua.tags]]", f'name = "{t}"', f'node = "s={t}"', 'datatype = "float"',
                  'unit = "u"', 'description = "load"', "low = 0.0", "high = 1e9", ""]
    return "\n".join(lines)


def edge_process(workdir: Path, config_toml: str) -> Proc:
    path = workdir / "edge.toml"
    path.write_text(config_toml)
    return Proc("edge", ["edge", "run", "-c", str(path)], workdir / "edge.log")
