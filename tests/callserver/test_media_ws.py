"""The media WebSocket: tokens checked before any call state, garbage survived, one session per call."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared import stream_token
from tests.callserver.test_webhooks import Server, server  # noqa: F401  (fixture)

FRAME = base64.b64encode(b"\xff" * 160).decode()


def ws_url(srv: Server) -> str:
    return srv.url.replace("http://", "ws://") + "/twilio/media"


async def open_stream(srv: Server, params: dict[str, str], call_sid: str = "CA1") -> ClientConnection:
    ws = await connect(ws_url(srv))
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = {"accountSid": "AC1", "streamSid": "MZ" + call_sid, "callSid": call_sid, "tracks": ["inbound"],
             "customParameters": params,
             "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ" + call_sid,
                              "start": start}))
    return ws


async def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(3):
            while True:
                await ws.recv()
    return ws.close_code


def token(srv: Server, call_id: int, ttl: int = 60, **kw: Any) -> str:
    return stream_token.mint(srv.settings.token_secret, call_id, ttl, **kw)


async def media(ws: ClientConnection, n: int) -> None:
    for i in range(n):
        await ws.send(json.dumps({"event": "media", "streamSid": "MZ", "media": {
            "track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20), "payload": FRAME}}))


async def test_streams_without_a_valid_token_for_their_call_are_refused(server: Server) -> None:  # noqa: F811
    call_id = await server.new_call(status="in-progress")
    other = await server.new_call(status="in-progress")
    bad = [
        {"call_id": str(call_id)},  # missing
        {"call_id": str(call_id), "token": "123.abc"},  # wrong
        {"call_id": str(call_id), "token": token(server, call_id, ttl=-5)},  # expired
        {"call_id": str(call_id), "token": token(server, other)},  # another call's
        {"call_id": "x", "token": token(server, call_id)},
        {"token": token(server, call_id)},
    ]
    for params in bad:
        ws = await open_stream(server, params)
        assert await close_code(ws) == 1008
    assert server.sessions == {}
    assert server.app.state.registry.active_count() == 0


async def test_garbage_before_start_closes_only_that_socket(server: Server) -> None:  # noqa: F811
    for junk in ["not json", json.dumps([1, 2]), json.dumps({"event": "media"}), b"\x00\x01binary"]:
        ws = await connect(ws_url(server))
        await ws.send(junk)
        assert await close_code(ws) == 1008
    call_id = await server.new_call(status="in-progress")
    ws = await open_stream(server, {"call_id": str(call_id), "token": token(server, call_id)})
    await media(ws, 3)
    await ws.send("{broken")
    await ws.send(json.dumps({"event": "media", "media": {"payload": "!!!not base64"}}))
    await media(ws, 2)
    await ws.send(json.dumps({"event": "stop", "streamSid": "MZ", "stop": {"callSid": "CA1"}}))
    await close_code(ws)
    assert server.sessions[call_id].frames == 5


async def test_a_new_stream_of_the_same_call_reattaches_to_its_session(server: Server) -> None:  # noqa: F811
    call_id = await server.new_call(status="in-progress")
    params = {"call_id": str(call_id), "token": token(server, call_id)}
    first = await open_stream(server, params)
    await media(first, 2)
    await first.close()  # TwiML replaced: Twilio ends this stream and opens another
    second = await open_stream(server, {"call_id": str(call_id), "token": token(server, call_id)})
    await media(second, 3)
    await second.send(json.dumps({"event": "stop", "streamSid": "MZ", "stop": {"callSid": "CA1"}}))
    await close_code(second)
    assert list(server.sessions) == [call_id]
    session = server.sessions[call_id]
    assert len(session.streams) == 2 and session.frames == 5
    registry = server.app.state.registry
    assert registry.active_count() == 1
    live = registry.calls[call_id]
    session.end("test over")
    async with asyncio.timeout(3):
        await live.done.wait()
    assert registry.active_count() == 0


async def test_many_calls_at_once_each_get_their_own_session(server: Server) -> None:  # noqa: F811
    server.settings.max_concurrent_calls = 40
    ids = [await server.new_call(status="in-progress") for _ in range(30)]

    async def one(call_id: int) -> None:
        ws = await open_stream(server, {"call_id": str(call_id), "token": token(server, call_id)},
                               call_sid=f"CA{call_id}")
        await media(ws, 10)
        await ws.send(json.dumps({"event": "stop", "streamSid": "MZ", "stop": {"callSid": "x"}}))
        await close_code(ws)

    await asyncio.gather(*(one(i) for i in ids))
    assert sorted(server.sessions) == ids
    assert all(server.sessions[i].frames == 10 for i in ids)


async def test_stream_for_finished_or_unknown_call_is_refused(server: Server) -> None:  # noqa: F811
    done = await server.new_call(status="completed")
    for call_id in (done, 999):
        ws = await open_stream(server, {"call_id": str(call_id), "token": token(server, call_id)})
        assert await close_code(ws) == 1013
    assert server.sessions == {}
