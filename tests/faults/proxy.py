"""An asyncio TCP proxy that injects network faults between two real components.

It forwards bytes unchanged while healthy. Faults:

* ``partition()``: a network partition. Existing connections stop forwarding in both
  directions (bytes are read and discarded, so the peers see silence, not a reset) and new
  connections are accepted and held silent. ``heal()`` ends it; connections held during the
  partition are closed, so peers notice and reconnect.
* ``refuse()``: new connections are closed at once and existing ones are reset
  (like a stopped server); ``heal()`` ends it.
* ``reset_connections()``: close every current connection once.

Counts of connections and bytes are kept for reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class ProxyStats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0):
        self.target = (target_host, target_port)
        self.listen = (listen_host, listen_port)
        self.stats = ProxyStats()
        self._server: asyncio.base_events.Server | None = None
        self._mode = "forward"  # forward | partition | refuse
        self._conns: set[_Pipe] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def host(self) -> str:
        return self.listen[0]

    async def __aenter__(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._accept, *self.listen)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        self.reset_connections()
        await self._server.wait_closed()

    # ---------------------------------------------------------------- faults

    def partition(self) -> None:
        self._mode = "partition"
        for pipe in self._conns:
            pipe.silent = True

    def refuse(self) -> None:
        self._mode = "refuse"
        self.reset_connections()

    def heal(self) -> None:
        was = self._mode
        self._mode = "forward"
        if was == "partition":
            self.reset_connections()

    def reset_connections(self) -> None:
        for pipe in list(self._conns):
            pipe.close()
            self.stats.resets += 1

    # ---------------------------------------------------------------- plumbing

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "refuse":
            writer.transport.abort()
            return
        self.stats.connections += 1
        pipe = _Pipe(self, reader, writer, silent=self._mode == "partition")
        self._conns.add(pipe)
        try:
            await pipe.run()
        except asyncio.CancelledError:
            pipe.close()  # proxy shutting down; the handler task ends quietly
        finally:
            self._conns.discard(pipe)


class _Pipe:
    def __init__(self, proxy: FaultProxy, reader, writer, *, silent: bool):
        self.proxy = proxy
        self.client_r, self.client_w = reader, writer
        self.upstream_w: asyncio.StreamWriter | None = None
        self.silent = silent
        self._tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.proxy.target)
        except OSError:
            self.client_w.transport.abort()
            return
        self.upstream_w = up_w
        self._tasks = [
            asyncio.create_task(self._copy(self.client_r, up_w, "up")),
            asyncio.create_task(self._copy(up_r, self.client_w, "down")),
        ]
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self.close()

    async def _copy(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str):
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if self.silent:
                    continue  # partitioned: the bytes vanish
                dst.write(data)
                if direction == "up":
                    self.proxy.stats.bytes_up += len(data)
                else:
                    self.proxy.stats.bytes_down += len(data)
                await dst.drain()

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for w in (self.client_w, self.upstream_w):
            if w is not None:
                w.transport.abort()
