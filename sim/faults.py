"""Fault and latency injection shared by every emulator.

A test or benchmark flips fields on an emulator's ``faults`` object while it runs; each emulator
consults it on every HTTP request and WebSocket it serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.responses import JSONResponse, Response


@dataclass
class Faults:
    """What an emulator should do wrong, and how slowly."""

    delay_s: float = 0.0
    """Added before every HTTP answer and before the first byte/message of every stream."""
    http_status: int | None = None
    """Answer HTTP requests with this status (e.g. 429, 500, 503) instead of serving them."""
    fail_count: int | None = None
    """With http_status: fail only this many requests, then serve normally (None = keep failing)."""
    retry_after_s: int = 1
    """Retry-After / retry_after sent with a 429."""
    drop_ws_after_s: float | None = None
    """Close every WebSocket this many seconds after it opened (abnormally, code 1011)."""
    stall: bool = False
    """Accept requests and sockets, then never answer."""
    failed: int = field(default=0, init=False)
    """How many requests were failed so far (read by tests)."""

    def take_http_failure(self) -> int | None:
        """The status to fail the current request with, or None to serve it."""
        if self.http_status is None:
            return None
        if self.fail_count is not None and self.failed >= self.fail_count:
            return None
        self.failed += 1
        return self.http_status

    async def before_http(self, error_body: dict | None = None) -> Response | None:
        """Sleep for the configured delay; return an error response if this request must fail."""
        if self.stall:
            await asyncio.Event().wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.take_http_failure()
        if status is None:
            return None
        headers = {"Retry-After": str(self.retry_after_s)} if status == 429 else {}
        body = error_body or {"error": {"message": f"emulated fault {status}", "code": status}}
        return JSONResponse(body, status_code=status, headers=headers)

    def reset(self) -> None:
        self.delay_s = 0.0
        self.http_status = None
        self.fail_count = None
        self.stall = False
        self.drop_ws_after_s = None
        self.failed = 0
