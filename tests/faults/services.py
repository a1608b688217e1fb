"""Services a fault test owns and may stop, kill and restart: never the machine's shared ones.

* :class:`OwnMosquitto`: a Mosquitto broker on its own port with a generated config.
* :class:`OwnPostgres`: a PostgreSQL cluster made with ``initdb`` from the Debian server
  binaries, run as the ``postgres`` system user when the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, *, up: bool = True, timeout: float = 30.0) -> None:
    """Wait until something listens on ``port`` (or, with ``up=False``, nothing does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout}s")


class OwnMosquitto:
    def __init__(self, workdir: Path, *, port: int | None = None, persistence: bool = True):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence {'true' if persistence else 'false'}",
                 f"persistence_location {self.dir}/", "autosave_interval 1",
                 "max_queued_messages 1000000", "max_inflight_messages 0",
                 f"log_dest file {self.dir}/mosquitto.log"]
        if os.geteuid() == 0:
            lines.append("user root")
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([mosquitto, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        wait_port(self.port, up=False)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class OwnPostgres:
    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self, workdir: Path, *, port: int | None = None):
        self.dir = workdir
        self.data = workdir / "data"
        self.port = port or free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        if not (self.BIN / "initdb").exists():
            candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
            if candidates:
                self.BIN = candidates[-1]

    @classmethod
    def available(cls) -> bool:
        return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.BIN / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            # the server user must be able to reach its directory (temp dirs are 0700)
            for parent in self.dir.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                "-c fsync=on -c max_connections=50")
        done = self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"),
                         "-w", "-t", "60", "start", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stdout} {done.stderr}\n"
                               f"{self.log_tail()}")
        wait_port(self.port)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.dir / "pg.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash (no checkpoint, clients cut off)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        wait_port(self.port, up=False)

    def destroy(self) -> None:
        """Stop and delete the cluster; its log stays for a post-mortem."""
        self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)
