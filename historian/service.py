"""Running historian parts as one asyncio service: ingest, HTTP API, or both.

The process owns its signals: SIGINT/SIGTERM set a stop event, and every part shuts down
from that event (uvicorn's own signal capture is disabled so it cannot re-raise the signal
after a clean shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

import uvicorn

log = logging.getLogger(__name__)


class ApiServer(uvicorn.Server):
    """uvicorn server that leaves signal handling to the caller."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class ServiceError(RuntimeError):
    """A part of the service could not start (port in use, database unreachable, …)."""


async def serve_api(app, host: str, port: int, stop: asyncio.Event,
                    started: asyncio.Event | None = None) -> None:
    """Serve ``app`` until ``stop`` is set. Raises :class:`ServiceError` if it cannot start."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            access_log=False)
    server = ApiServer(config)
    task = asyncio.create_task(server.serve())

    async def _started():
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if started is not None and server.started:
            started.set()

    watcher = asyncio.create_task(_started())
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                task.result()
            except SystemExit as err:  # uvicorn exits on startup failure (e.g. port in use)
                raise ServiceError(f"HTTP API could not start on {host}:{port}") from err
            if not stop.is_set():
                raise ServiceError(f"HTTP API on {host}:{port} stopped unexpectedly")
    finally:
        server.should_exit = True
        with contextlib.suppress(SystemExit, asyncio.CancelledError):
            await task
        watcher.cancel()
        stopper.cancel()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop``; a second SIGINT is left to the default handler."""
    loop = asyncio.get_running_loop()

    def _on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and sig == signal.SIGINT:
            loop.remove_signal_handler(signal.SIGINT)  # next Ctrl-C interrupts hard
        log.info("received %s, shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, sig)


def run_service(main: Callable[[asyncio.Event], Awaitable[int | None]]) -> int:
    """Run ``main(stop)`` in a fresh event loop with stop signals installed."""

    async def _runner() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        return int(await main(stop) or 0)

    return asyncio.run(_runner())
