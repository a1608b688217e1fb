"""Run-time control port: JSON lines over TCP on loopback.

Each request is one JSON object on a line; each answer is one JSON object on a line with
``"ok": true`` or ``"ok": false, "error": "..."``. Operations:

* ``{"op": "fault", "spec": {"kind": "frozen", "target": "BR01.TEMP", ...}}`` -> ``{"fault_id": N}``
* ``{"op": "clear", "fault_id": N}``
* ``{"op": "status"}`` -> simulated time, speed, active faults
* ``{"op": "log"}`` -> every fault record so far
* ``{"op": "write", "tag": "BR01.TEMP_SP", "value": 37.0}`` (operator action)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_LINE = 64 * 1024


class ControlPortError(RuntimeError):
    """The control port could not be opened."""


class ControlServer:
    """Serves ``handler`` on ``host:port`` (port 0 picks a free one; see ``port`` after start)."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._client, self.host, self.port, limit=MAX_LINE)
        except OSError as err:
            raise ControlPortError(f"servers.control_port: cannot listen on {self.host}:{self.port}: {err}") from err
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                    answer = {"ok": True, **await self.handler(request)}
                except (ValueError, KeyError, TypeError) as err:
                    answer = {"ok": False, "error": str(err)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def request(host: str, port: int, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a control port and return the answer (raises OSError/TimeoutError)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("control port closed the connection without an answer")
        return json.loads(line)
    finally:
        writer.close()
