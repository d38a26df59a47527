"""Deepgram emulator: live STT ``/v1/listen`` and TTS ``/v1/speak`` (REST and WebSocket).

Followed (developers.deepgram.com): "Authenticating" (/docs/authenticating: ``Authorization: Token <key>``,
or ``Bearer`` for temporary tokens, or the ``Sec-WebSocket-Protocol: token, <key>`` pair), "STT
Troubleshooting WebSocket, NET, and DATA Errors" (a refused handshake is an HTTP 4xx, never a 101) and the
pages listed in ``sim.deepgram_stt`` and ``sim.deepgram_tts``.

Point the real SDK at it with
``DeepgramClientEnvironment(base=url, production=url.replace("http", "ws"), agent=..., agent_rest=...)``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from sim.deepgram_stt import ListenOptions, ListenSession, run_listen
from sim.deepgram_tts import run_speak_ws, speak_rest
from sim.faults import Faults


@dataclass
class DeepgramEmulator:
    """Settings, fault switches and counters for one emulated Deepgram; ``.app`` is its ASGI app."""

    api_key: str = "dg-test-key"
    idle_timeout_s: float = 10.0
    """Close a listen socket (1011, NET-0001) after this long with neither audio nor a text message."""
    max_segment_ms: float = 5000.0
    """Finalise (is_final without speech_final) speech running this long without an endpoint."""
    tts_ttfb_s: float = 0.0
    tts_chunk_ms: float = 40.0
    tts_realtime_factor: float = 0.0
    """Seconds spent generating each second of TTS audio after the first chunk (0 = as fast as possible)."""
    faults: Faults = field(default_factory=Faults)
    sessions: list[ListenSession] = field(default_factory=list)
    audio_seconds: float = 0.0
    """Audio received for transcription, in seconds (cost accounting)."""
    characters: int = 0
    """Characters synthesised by TTS (cost accounting)."""
    tts_requests: list[str] = field(default_factory=list)
    rejected: int = 0
    """Handshakes refused (bad key, bad options, injected HTTP faults)."""

    def __post_init__(self) -> None:
        self.app = create_deepgram_app(self)

    def authorized(self, header: str | None, subprotocols: list[str] | None = None) -> bool:
        if header:
            scheme, _, key = header.partition(" ")
            return scheme.lower() in ("token", "bearer") and key.strip() == self.api_key
        protocols = subprotocols or []
        return len(protocols) == 2 and protocols[0] in ("token", "bearer") and protocols[1] == self.api_key

    @staticmethod
    def new_request_id() -> str:
        return str(uuid.uuid4())


def _error(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    return JSONResponse({"err_code": code, "err_msg": message, "request_id": request_id}, status_code=status)


async def _open(ws: WebSocket, emu: DeepgramEmulator) -> str | None:
    """Authenticate and apply handshake faults; accept and return the request id, or refuse (None)."""
    request_id = emu.new_request_id()
    if emu.faults.stall:
        await asyncio.Event().wait()
    if emu.faults.delay_s:
        await asyncio.sleep(emu.faults.delay_s)
    protocols = ws.scope.get("subprotocols") or []
    if not emu.authorized(ws.headers.get("authorization"), protocols):
        emu.rejected += 1
        await ws.send_denial_response(_error(401, "INVALID_AUTH", "Invalid credentials.", request_id))
        return None
    status = emu.faults.take_http_failure()
    if status is not None:
        emu.rejected += 1
        await ws.send_denial_response(_error(status, "SIM_FAULT", f"emulated fault {status}", request_id))
        return None
    subprotocol = protocols[0] if protocols and not ws.headers.get("authorization") else None
    await ws.accept(subprotocol=subprotocol, headers=[(b"dg-request-id", request_id.encode())])
    return request_id


async def _listen(ws: WebSocket) -> None:
    emu: DeepgramEmulator = ws.app.state.emulator
    try:
        options = ListenOptions.from_query(dict(ws.query_params))
    except ValueError as exc:
        emu.rejected += 1
        await ws.send_denial_response(_error(400, "INVALID_QUERY_PARAMETER", str(exc), "sim"))
        return
    request_id = await _open(ws, emu)
    if request_id is None:
        return
    session = ListenSession(options, request_id, emu.max_segment_ms)
    emu.sessions.append(session)
    await run_listen(ws, emu, session)


async def _speak_ws(ws: WebSocket) -> None:
    emu: DeepgramEmulator = ws.app.state.emulator
    request_id = await _open(ws, emu)
    if request_id is None:
        return
    drop = emu.faults.drop_ws_after_s
    try:
        await asyncio.wait_for(run_speak_ws(ws, emu, request_id), drop)
    except TimeoutError:
        await ws.close(1011, "emulated fault: connection dropped")


def create_deepgram_app(emulator: DeepgramEmulator | None = None) -> Starlette:
    """The ASGI app serving ``emulator`` (a fresh default one if None; see ``app.state.emulator``)."""
    app = Starlette(routes=[
        WebSocketRoute("/v1/listen", _listen),
        Route("/v1/speak", speak_rest, methods=["POST"]),
        WebSocketRoute("/v1/speak", _speak_ws),
    ])
    # Building the emulator builds an app; keep the one it was built with when none is given.
    app.state.emulator = emulator if emulator is not None else DeepgramEmulator()
    return app
