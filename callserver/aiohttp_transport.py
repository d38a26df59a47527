"""An httpx transport sending through aiohttp, for the ElevenLabs SDK's httpx 0.28 client.

httpx takes any ``AsyncBaseTransport`` (www.python-httpx.org/advanced/transports/#custom-transports);
the SDK still builds and sends every request through its ``httpx.AsyncClient``. Under httpx's own
transport a request goes through httpcore, h11 and anyio (together ~35% of a TTS request's client CPU
in cProfile); aiohttp parses HTTP in C on plain asyncio sockets. This is what the OpenAI and Anthropic
SDKs ship for httpx2 as their ``aiohttp`` extra (``DefaultAioHttpClient``), for httpx: responses stream
as received, undecoded (httpx decodes), no redirects or retries here (httpx and the SDK do those).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx

_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    # Most specific first: aiohttp's timeouts are also ClientErrors, its connector errors OSErrors.
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (TimeoutError, httpx.TimeoutException),
    (aiohttp.ClientError, httpx.NetworkError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones callers of an httpx client expect."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise


class _Body(httpx.AsyncByteStream):
    """A response body: each network read as it comes (audio must not wait for a buffer to fill)."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end returns the connection to the pool; one cut short (a barge-in) closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 through one aiohttp session (its connection pool: ``limits``), opened at the first request
    (aiohttp binds a session to the running event loop)."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        # httpx's certificate store (certifi), as its own transport; loading it takes ~20 ms, so here at
        # start-up as httpx does, not in the first call's first phrase.
        self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._limits.max_connections or 0,
                                         keepalive_timeout=self._limits.keepalive_expiry, ssl=self._ssl)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _as_httpx_errors():
            response = await session.request(
                request.method, str(request.url), headers=request.headers.multi_items(), data=body or None,
                allow_redirects=False, compress=None,
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"),
                                              sock_connect=timeout.get("connect"),
                                              sock_read=timeout.get("read")))
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        return httpx.Response(response.status, headers=response.raw_headers, stream=_Body(response),
                              request=request, extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
