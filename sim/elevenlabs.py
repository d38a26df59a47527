"""ElevenLabs text-to-speech emulator: HTTP streaming and the ``stream-input`` WebSocket.

Followed (elevenlabs.io/docs): API reference "Stream speech" (POST /v1/text-to-speech/{voice_id}/stream,
output_format query, ``xi-api-key`` header), "Create speech" (POST /v1/text-to-speech/{voice_id}),
"WebSocket" (/docs/api-reference/text-to-speech/v-1-text-to-speech-voice-id-stream-input: first message
{"text": " ", voice_settings, generation_config{chunk_length_schedule}, xi_api_key}, then text with
try_trigger_generation / flush, end with {"text": ""}; server {"audio", "isFinal", "normalizedAlignment",
"alignment" {chars, charStartTimesMs, charDurationsMs}} and finally {"isFinal": true}), and the guide
"Understanding how our WebSockets buffer text" (chunk_length_schedule default [120, 160, 250, 290]).

Audio is ``sim.codec`` speech, raw mu-law 8 kHz (ulaw_8000), so the listener recovers exactly the text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from sim.codec import encode_speech, encode_words, split_words, word_ms
from sim.faults import Faults

SUPPORTED_FORMAT = "ulaw_8000"
_KNOWN_FORMAT = re.compile(r"^(mp3_\d+_\d+|pcm_\d+|ulaw_8000|alaw_8000|opus_\d+_\d+|wav_\d+)$")
DEFAULT_SCHEDULE = [120, 160, 250, 290]


@dataclass
class ElevenLabsEmulator:
    """Settings, fault switches and counters for one emulated ElevenLabs; ``.app`` is its ASGI app."""

    api_key: str = "el-test-key"
    ttfb_s: float = 0.0
    """Delay before the first audio byte of every generation."""
    chunk_ms: float = 100.0
    """Size of the streamed HTTP audio pieces, in ms of audio."""
    realtime_factor: float = 0.0
    """Seconds spent generating each second of audio after the first piece (0 = as fast as possible)."""
    faults: Faults = field(default_factory=Faults)
    characters: int = 0
    """Characters synthesised (cost accounting)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every HTTP body and WebSocket opening message received, for tests."""
    generations: list[str] = field(default_factory=list)
    """The text of every piece of audio generated, in order."""

    def __post_init__(self) -> None:
        self.app = create_elevenlabs_app(self)


def _detail(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status)


def _format_error(output_format: str) -> JSONResponse | None:
    if not _KNOWN_FORMAT.match(output_format):
        return JSONResponse({"detail": [{
            "type": "enum", "loc": ["query", "output_format"], "input": output_format,
            "msg": "Input should be a valid output format, e.g. 'mp3_44100_128' or 'ulaw_8000'",
        }]}, status_code=422)
    if output_format != SUPPORTED_FORMAT:
        return _detail(400, "invalid_output_format", f"The emulator produces {SUPPORTED_FORMAT} only.")
    return None


def _speed(body: dict[str, Any]) -> float:
    settings = body.get("voice_settings") or {}
    try:
        return float(settings.get("speed") or 1.0)
    except (TypeError, ValueError):
        return 1.0


def _audio(text: str, rate: float) -> tuple[bytes, dict[str, list[Any]]]:
    """Audio for ``text`` (each word with its following pause) and its character alignment."""
    chars: list[str] = []
    starts: list[int] = []
    durations: list[int] = []
    audio = bytearray()
    for i, (word, seg) in enumerate(encode_words(text, rate)):
        t0 = len(audio) / 8
        if i:
            chars.append(" ")
            starts.append(round(t0))
            durations.append(0)
        spoken_ms = word_ms(word, rate)
        step = spoken_ms / len(word)
        for j, ch in enumerate(word):
            chars.append(ch)
            starts.append(round(t0 + j * step))
            durations.append(round(step))
        durations[-1] += round(len(seg) / 8 - spoken_ms)  # the pause belongs to the last character
        audio += seg
    return bytes(audio), {"chars": chars, "charStartTimesMs": starts, "charDurationsMs": durations}


async def _pieces(emu: ElevenLabsEmulator, audio: bytes, arrived: float) -> AsyncIterator[bytes]:
    # The first byte is due ttfb_s after the request arrived: generating the audio is inside that time.
    await asyncio.sleep(max(0.0, arrived + emu.ttfb_s - time.monotonic()))
    step = max(1, int(emu.chunk_ms * 8))
    for i in range(0, len(audio), step):
        if i and emu.realtime_factor:
            await asyncio.sleep(emu.chunk_ms / 1000 * emu.realtime_factor)
        yield audio[i:i + step]


async def _http_tts(request: Request) -> Response:
    emu: ElevenLabsEmulator = request.app.state.emulator
    arrived = time.monotonic()
    if request.headers.get("xi-api-key") != emu.api_key:
        return _detail(401, "invalid_api_key", "Invalid API key")
    failure = await emu.faults.before_http({"detail": {"status": "sim_fault", "message": "emulated fault"}})
    if failure is not None:
        return failure
    problem = _format_error(request.query_params.get("output_format", "mp3_44100_128"))
    if problem is not None:
        return problem
    try:
        body = await request.json()
        text = str(body["text"])
    except (ValueError, KeyError, TypeError):
        return _detail(400, "invalid_request", "The body must be JSON with a 'text' field.")
    if not text.strip():
        return _detail(400, "empty_text", "Text must not be empty.")
    emu.requests.append(body)
    emu.characters += len(text)
    emu.generations.append(text)
    audio = encode_speech(text, _speed(body))
    headers = {"request-id": f"sim-{len(emu.requests)}", "character-cost": str(len(text))}
    return StreamingResponse(_pieces(emu, audio, arrived), media_type="audio/basic", headers=headers)


class _StreamInput:
    """One stream-input socket: buffers text the way the real service does and generates at word ends."""

    def __init__(self, ws: WebSocket, emu: ElevenLabsEmulator) -> None:
        self.ws, self.emu = ws, emu
        self.buffer = ""
        self.schedule = list(DEFAULT_SCHEDULE)
        self.generated = 0  # generations so far: indexes the schedule
        self.rate = 1.0
        self.auto_mode = ws.query_params.get("auto_mode", "false").lower() == "true"
        self.jobs: asyncio.Queue[str | None] = asyncio.Queue()

    async def run(self) -> None:
        worker = asyncio.create_task(self._generate())
        timeout = float(self.ws.query_params.get("inactivity_timeout", "20"))
        try:
            first = True
            while True:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), timeout)
                except TimeoutError:
                    await self.ws.close(1008, f"No new text input within {timeout:g} seconds")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    data = json.loads(message.get("text") or "")
                    text = str(data["text"])
                except (ValueError, KeyError, TypeError):
                    await self.ws.close(1008, "Invalid message: expected JSON with a 'text' field")
                    return
                if first and not await self._open(data):
                    return
                if text == "" and not first:
                    self._take(everything=True)
                    self.jobs.put_nowait(None)
                    await worker
                    return
                first = False
                # Leading whitespace (the opening " ", spaces after a cut) does not count toward a threshold.
                self.buffer = (self.buffer + text).lstrip()
                flush = bool(data.get("flush")) or self.auto_mode or bool(data.get("try_trigger_generation"))
                self._take(everything=bool(data.get("flush")), complete_words=flush)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _open(self, data: dict[str, Any]) -> bool:
        """Check the key and read the settings in the opening message."""
        key = self.ws.headers.get("xi-api-key") or data.get("xi_api_key")
        if key != self.emu.api_key:
            await self.ws.close(1008, "Invalid API key")  # the real service closes with policy violation
            return False
        self.emu.requests.append(data)
        schedule = (data.get("generation_config") or {}).get("chunk_length_schedule")
        if schedule:
            self.schedule = [int(n) for n in schedule]
        self.rate = _speed(data)
        return True

    def _take(self, *, everything: bool = False, complete_words: bool = False) -> None:
        """Move text from the buffer to generation when a threshold or a flush says so."""
        while True:
            threshold = self.schedule[min(self.generated, len(self.schedule) - 1)]
            if everything:
                cut = len(self.buffer)
            elif complete_words or len(self.buffer) >= threshold:
                # Generate up to the last word boundary only: a word may continue in the next message.
                cut = max(self.buffer.rfind(" "), self.buffer.rfind("\n"))
            else:
                return
            piece = self.buffer[:cut] if cut > 0 else ""
            if not split_words(piece):
                return
            self.buffer = self.buffer[cut:].lstrip() if everything else self.buffer[cut + 1:]
            self.generated += 1
            self.jobs.put_nowait(piece.strip())
            if everything or complete_words:
                return

    async def _generate(self) -> None:
        while (text := await self.jobs.get()) is not None:
            self.emu.characters += len(text)
            self.emu.generations.append(text)
            audio, alignment = _audio(text, self.rate)
            await asyncio.sleep(self.emu.ttfb_s)
            await self.ws.send_text(json.dumps({
                "audio": base64.b64encode(audio).decode(), "isFinal": None,
                "normalizedAlignment": alignment, "alignment": alignment,
            }))
            if self.emu.realtime_factor:
                await asyncio.sleep(len(audio) / 8000 * self.emu.realtime_factor)
        await self.ws.send_text(json.dumps({"isFinal": True}))
        await self.ws.close(1000)


async def _stream_input(ws: WebSocket) -> None:
    emu: ElevenLabsEmulator = ws.app.state.emulator
    if emu.faults.stall:
        await asyncio.Event().wait()
    if emu.faults.delay_s:
        await asyncio.sleep(emu.faults.delay_s)
    status = emu.faults.take_http_failure()
    if status is not None:
        await ws.send_denial_response(_detail(status, "sim_fault", f"emulated fault {status}"))
        return
    problem = _format_error(ws.query_params.get("output_format", "mp3_44100_128"))
    if problem is not None:
        await ws.send_denial_response(problem)
        return
    await ws.accept()
    try:
        await asyncio.wait_for(_StreamInput(ws, emu).run(), emu.faults.drop_ws_after_s)
    except TimeoutError:
        await ws.close(1011, "emulated fault: connection dropped")


def create_elevenlabs_app(emulator: ElevenLabsEmulator | None = None) -> Starlette:
    """The ASGI app serving ``emulator`` (see ``app.state.emulator``)."""
    app = Starlette(routes=[
        Route("/v1/text-to-speech/{voice_id}/stream", _http_tts, methods=["POST"]),
        Route("/v1/text-to-speech/{voice_id}", _http_tts, methods=["POST"]),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", _stream_input),
    ])
    app.state.emulator = emulator if emulator is not None else ElevenLabsEmulator()
    return app
