"""Deepgram text-to-speech: REST ``POST /v1/speak`` and the ``/v1/speak`` WebSocket.

Followed (developers.deepgram.com): "Text to Speech REST" reference (/reference/text-to-speech/speak-request),
"Streaming audio outputs" (/docs/streaming-the-audio-output), "Text to Speech WebSocket" reference
(/reference/text-to-speech/speak-streaming: Speak, Flush -> Flushed {sequence_id}, Clear -> Cleared
{sequence_id}, Close; Metadata on open), and "Media output settings" (encoding=mulaw, sample_rate=8000,
container=none gives raw headerless audio).

The audio is ``sim.codec`` speech, so whoever hears it recovers exactly the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket

from sim.codec import encode_speech

if TYPE_CHECKING:
    from sim.deepgram import DeepgramEmulator

MODEL_UUID = "e3b0c442-98fc-1c14-9afb-f4c8996fb924"
_MAX_CHARS = 2000  # REST limit per request in the docs


def _audio_format_error(q: Any) -> str | None:
    encoding = q.get("encoding", "mulaw")
    if encoding != "mulaw":
        return f"The emulator synthesises encoding=mulaw only, got {encoding!r}."
    if q.get("sample_rate", "8000") not in ("8000", "8000.0"):
        return "encoding=mulaw supports sample_rate=8000 only here."
    if q.get("container", "none") not in ("none", "wav"):
        return "Unsupported container for mulaw."
    return None


def _rate(q: Any) -> float:
    try:
        return float(q.get("speed", "1.0"))
    except ValueError:
        return 1.0


def _err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"err_code": code, "err_msg": message, "request_id": "sim"}, status_code=status)


async def speak_rest(request: Request) -> Response:
    emu: DeepgramEmulator = request.app.state.emulator
    if not emu.authorized(request.headers.get("authorization")):
        return _err(401, "INVALID_AUTH", "Invalid credentials.")
    failure = await emu.faults.before_http({"err_code": "SIM_FAULT", "err_msg": "emulated fault"})
    if failure is not None:
        return failure
    problem = _audio_format_error(request.query_params)
    if problem:
        return _err(400, "UNSUPPORTED_AUDIO_FORMAT", problem)
    try:
        text = str((await request.json())["text"])
    except (ValueError, KeyError, TypeError):
        return _err(400, "INVALID_QUERY_PARAMETER", "Request body must be JSON with a 'text' field.")
    if not text.strip() or len(text) > _MAX_CHARS:
        return _err(400, "INVALID_QUERY_PARAMETER", f"Text must be 1-{_MAX_CHARS} characters.")
    emu.characters += len(text)
    emu.tts_requests.append(text)
    audio = encode_speech(text, _rate(request.query_params))
    headers = {
        "dg-request-id": emu.new_request_id(), "dg-model-name": request.query_params.get("model", "aura-2"),
        "dg-model-uuid": MODEL_UUID, "dg-char-count": str(len(text)),
    }
    return StreamingResponse(_paced(emu, audio), media_type="audio/mulaw", headers=headers)


async def _paced(emu: DeepgramEmulator, audio: bytes) -> AsyncIterator[bytes]:
    """Audio in chunk_ms pieces after the time to first byte, generated at tts_realtime_factor."""
    await asyncio.sleep(emu.tts_ttfb_s)
    step = max(1, int(emu.tts_chunk_ms * 8))
    for i in range(0, len(audio), step):
        if i and emu.tts_realtime_factor:
            await asyncio.sleep(emu.tts_chunk_ms / 1000 * emu.tts_realtime_factor)
        yield audio[i:i + step]


async def run_speak_ws(ws: WebSocket, emu: DeepgramEmulator, request_id: str) -> None:
    """Serve an accepted /v1/speak socket: Speak buffers text, Flush synthesises it, Clear drops it."""
    model = ws.query_params.get("model", "aura-2-thalia-en")
    rate = _rate(ws.query_params)
    await ws.send_text(json.dumps({
        "type": "Metadata", "request_id": request_id, "model_name": model, "model_version": "2025-01-01.0",
        "model_uuid": MODEL_UUID,
    }))
    pending: list[str] = []
    sequence = 0
    jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    send_lock = asyncio.Lock()

    async def synthesise() -> None:
        while True:
            text, seq = await jobs.get()
            if text:
                async for chunk in _paced(emu, encode_speech(text, rate)):
                    async with send_lock:
                        await ws.send_bytes(chunk)
            async with send_lock:
                await ws.send_text(json.dumps({"type": "Flushed", "sequence_id": seq}))

    worker = asyncio.create_task(synthesise())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                data = json.loads(message.get("text") or "")
                kind = data.get("type")
            except (ValueError, AttributeError):
                data, kind = {}, None
            if kind == "Speak":
                text = str(data.get("text", ""))
                emu.characters += len(text)
                pending.append(text)
            elif kind == "Flush":
                jobs.put_nowait(("".join(pending), sequence))
                emu.tts_requests.append("".join(pending))
                pending, sequence = [], sequence + 1
            elif kind == "Clear":
                # Drop unsent text and audio still being generated, then confirm.
                pending = []
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                while not jobs.empty():
                    jobs.get_nowait()
                async with send_lock:
                    await ws.send_text(json.dumps({"type": "Cleared", "sequence_id": sequence}))
                worker = asyncio.create_task(synthesise())
            elif kind == "Close":
                await ws.close(1000)
                return
            else:
                await ws.send_text(json.dumps({
                    "type": "Warning", "code": "INVALID_MESSAGE",
                    "description": "Expected Speak, Flush, Clear or Close.",
                }))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
