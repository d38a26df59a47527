"""Free each finished HTTP response by reference counting instead of leaving it to the cyclic GC.

httpx 0.28 binds every response's body to it both ways (``response.stream`` is a ``BoundAsyncStream``
holding ``response``), so a closed response with its request, headers, URL and connection-pool request
(~40 objects) stays alive until a garbage collection finds the cycle. ElevenLabs' SDK runs on httpx (the
OpenAI and Anthropic SDKs' httpx2 has no such cycle) and makes a request per phrase: in a bench run
(10 calls, gc.DEBUG_SAVEALL) these responses were ~5,000 of the ~6,900 objects of cyclic garbage, all
found and freed inside collections that stall every call's audio.

``EVENT_HOOKS`` (httpx's documented response hook, www.python-httpx.org/advanced/event-hooks/) wraps
the body so that closing it, as the SDKs and our stream readers always do, also cuts the back
reference: nothing then holds the response but its last user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

_CLOSED = httpx.ByteStream(b"")
"""What a closed response's body becomes (reading a closed body raises before touching it)."""


class _ReleasingStream(httpx.AsyncByteStream):
    """The response's own body stream, as is, until closed; then the response lets go of it."""

    __slots__ = ("_body", "_response")

    def __init__(self, body: httpx.AsyncByteStream, response: httpx.Response) -> None:
        self._body = body
        self._response: httpx.Response | None = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._body.__aiter__()  # the body's own iterator: no extra layer per chunk

    async def aclose(self) -> None:
        try:
            await self._body.aclose()  # sets response.elapsed and returns the connection, as before
        finally:
            if self._response is not None:
                self._response.stream = _CLOSED
                self._response = None


async def _release_when_closed(response: httpx.Response) -> None:
    response.stream = _ReleasingStream(response.stream, response)  # type: ignore[arg-type]


EVENT_HOOKS: dict[str, list[Any]] = {"response": [_release_when_closed]}
"""``event_hooks=`` for the call server's httpx.AsyncClient (ElevenLabs)."""
