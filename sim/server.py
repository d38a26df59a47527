"""Run an emulator's ASGI app on 127.0.0.1 with a free port.

``serve`` runs it inside the caller's event loop (for async SDK clients); ``serve_in_thread`` runs it in
a thread with its own loop, for synchronous SDK clients that would otherwise block the loop serving them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.lowlevel
import uvicorn


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="auto", ws="websockets-sansio",
        ws_ping_interval=None, access_log=False,
        # Idle keep-alive like the load balancers in front of the real APIs (AWS ALB's default is 60 s),
        # not uvicorn's 5 s, which would close a client's pooled connection between two turns of a call.
        timeout_keep_alive=60,
    )


def _bound_port(server: uvicorn.Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` in this loop; yield its base URL (``http://127.0.0.1:PORT``)."""
    server = uvicorn.Server(_config(app, host, port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("emulator server exited during start-up")
        await asyncio.sleep(0.005)
    # Starlette's StreamingResponse imports anyio's backend for this loop on first use (~16 ms of this
    # loop, measured): at start-up rather than inside the first streamed request, whose time to first
    # byte the emulator counts from its arrival.
    await anyio.lowlevel.checkpoint()
    try:
        yield f"http://{host}:{_bound_port(server)}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a thread with its own event loop; yield its base URL."""
    server = uvicorn.Server(_config(app, host, port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="sim-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("emulator server exited during start-up")
        threading.Event().wait(0.005)
    try:
        yield f"http://{host}:{_bound_port(server)}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
