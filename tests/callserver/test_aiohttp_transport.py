"""callserver.aiohttp_transport under an httpx client: the ElevenLabs SDK's requests go out and come back
as through httpx's own transport (same request on the wire, streamed body, pooling, httpx errors)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from callserver.aiohttp_transport import AiohttpTransport
from callserver.tts.elevenlabs import ElevenLabsTTS
from sim.elevenlabs import ElevenLabsEmulator
from sim.server import serve


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers with what it received: method, path, query, headers and body, then ``n`` pieces slowly."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = sorted((k.decode(), v.decode()) for k, v in scope["headers"] if k != b"user-agent")
    echo = repr((scope["method"], scope["path"], scope["query_string"], headers, body)).encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-echo", b"1")]})
    await send({"type": "http.response.body", "body": echo, "more_body": True})
    for _ in range(3):
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"+", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    async with serve(_echo) as url:
        yield url


def _clients() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    limits = httpx.Limits(keepalive_expiry=30)
    return httpx.AsyncClient(limits=limits), httpx.AsyncClient(transport=AiohttpTransport(limits=limits))


async def test_the_server_receives_the_same_request_and_the_body_streams_as_it_comes(echo_url: str) -> None:
    answers = []
    for client in _clients():
        async with client:
            request = client.build_request("POST", f"{echo_url}/v1/x?output_format=ulaw_8000",
                                           json={"text": "héllo"}, headers={"xi-api-key": "k"})
            response = await client.send(request, stream=True)
            pieces = [piece async for piece in response.aiter_raw()]
            await response.aclose()
            answers.append((response.status_code, response.headers["x-echo"], pieces[0], pieces[1:]))
    theirs, ours = answers
    assert ours == theirs
    assert ours[3] == [b"+", b"+", b"+"]  # each piece as it was sent, not gathered into one read


async def test_a_body_read_to_its_end_reuses_the_connection_and_one_cut_short_does_not(echo_url: str) -> None:
    clients: list[Any] = []

    async def peers(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            clients.append(tuple(scope["client"]))
        await _echo(scope, receive, send)

    async with serve(peers) as url, _clients()[1] as client:
        for _ in range(2):
            async with client.stream("POST", url, content=b"x") as response:
                await response.aread()
        async with client.stream("POST", url, content=b"x") as response:
            async for _ in response.aiter_raw():
                break  # a barge-in: the rest of the body is not wanted
        async with client.stream("POST", url, content=b"x") as response:
            await response.aread()
    assert clients[0] == clients[1] == clients[2] != clients[3]


async def test_failures_are_httpx_errors() -> None:
    async with _clients()[1] as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # nothing listens on the discard port
    async with serve(_echo) as url, httpx.AsyncClient(transport=AiohttpTransport(limits=httpx.Limits()),
                                                      timeout=httpx.Timeout(5, read=0.02)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url, content=b"x")  # the pieces come 50 ms apart


async def test_elevenlabs_speaks_through_it_and_reports_http_errors_as_the_sdk_does() -> None:
    from elevenlabs.core.api_error import ApiError

    emu = ElevenLabsEmulator(api_key="el", ttfb_s=0.0)
    async with serve(emu.app) as url:
        provider = ElevenLabsTTS(api_key="el", base_url=url, voice_id="v1")
        assert isinstance(provider._http._transport, AiohttpTransport)
        audio = b"".join([chunk async for chunk in provider.synthesize("Hello there.")])
        assert audio and emu.generations == ["Hello there."]
        wrong = ElevenLabsTTS(api_key="nope", base_url=url, voice_id="v1")
        with pytest.raises(ApiError) as failed:
            async for _ in wrong.synthesize("Hello"):
                pass
        assert failed.value.status_code == 401
        await provider.close()
        await wrong.close()
