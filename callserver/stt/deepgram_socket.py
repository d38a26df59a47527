"""The listen socket under deepgram-sdk's ``AsyncV1SocketClient``: how it is opened (no deflate, one TLS
context) and the websockets connection it holds, which callserver/stt/deepgram.py reads and writes."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Coroutine
from typing import Any


def raw_websocket(socket: Any) -> Any | None:
    """The websockets connection under the SDK's ``AsyncV1SocketClient`` (its ``_websocket``), or None.

    The SDK still opens the socket (URL, auth header, query options, errors); we read and write the
    connection it holds, as callserver/llm/sse.py reads the LLM streams' bodies: the SDK's typed
    messages cost ~0.1 ms each to build (``construct_type``) and its ``send_media`` adds two coroutine
    layers per frame over websockets' ``send``. Duck-typed and checked by
    tests/callserver/test_stt_wire.py, so an SDK release that renames it fails there, while the stream
    falls back to the SDK's own methods here."""
    ws = getattr(socket, "_websocket", None)
    if ws is None or not all(callable(getattr(ws, name, None)) for name in ("send", "recv", "__aiter__")):
        return None
    return ws


def media_sender(socket: Any) -> Callable[[bytes], Coroutine[Any, Any, None]]:
    """How audio goes out: websockets' ``send`` of one binary message, which is all ``send_media``
    does (tests/callserver/test_stt_wire.py compares the bytes on the wire)."""
    ws = raw_websocket(socket)
    return socket.send_media if ws is None else ws.send


def connect_without_deflate() -> None:
    """Open the SDK's listen sockets without permessage-deflate.

    deepgram-sdk 7 calls websockets' legacy ``connect`` with its default ``compression="deflate"``, so
    each 20 ms mu-law frame (noise-like: it does not compress) went through zlib both ways, a measurable
    share of the call server's CPU at 50 calls. The SDK offers no option for it; its module-level
    ``websockets_client_connect`` is wrapped once to pass ``compression=None``."""
    from deepgram.listen.v1 import client, raw_client

    for module in (client, raw_client):  # AsyncV1Client.connect and its raw twin each import it
        connect = module.websockets_client_connect
        if not getattr(connect, "without_deflate", False):
            module.websockets_client_connect = _without_deflate(connect)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every listen socket of the process. Without it each ``wss://`` connect builds
    a default context (asyncio does, for ``ssl=True``), loading the CA bundle from disk: 23-38 ms holding
    the event loop, and so every other call's audio, at each call start and each reconnect."""
    return ssl.create_default_context()


def _without_deflate(connect: Any) -> Any:
    def without_deflate(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("compression", None)
        uri = args[0] if args else kwargs.get("uri", "")
        if str(uri).startswith("wss://"):
            kwargs.setdefault("ssl", tls_context())
        return connect(*args, **kwargs)

    without_deflate.without_deflate = True  # type: ignore[attr-defined]
    return without_deflate
