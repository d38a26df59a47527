"""What the emulators' own handling adds per message, so benchmarks and tests can trust them.

Streams (Twilio media frames, Deepgram audio frames) are timed on the emulator's own message handler, with
no socket; HTTP endpoints are timed in-process through httpx's ASGI transport, with every configured delay
at zero, and a trivial ASGI app's time through the same transport is subtracted (that part is the test
client and Starlette, not the emulator). Run: `.venv/bin/python bench/emulators.py`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from sim.anthropic import create_anthropic_app
from sim.audio import FRAME_BYTES
from sim.codec import encode_speech
from sim.deepgram import DeepgramEmulator
from sim.deepgram_stt import ListenOptions, ListenSession
from sim.elevenlabs import ElevenLabsEmulator
from sim.llm_script import ReplyQueue
from sim.openai import create_openai_app
from sim.telegram import TelegramEmulator
from sim.telegram_wire import FloodLimits
from sim.twilio import PhoneNetwork, create_app
from sim.twilio.calllog import CallLog
from sim.twilio.clock import Clock
from sim.twilio.line import Line
from sim.twilio.media import MediaStream, Stream

SPEECH = encode_speech("Thanks, I have the request open. Your reference number is PA-48213. " * 20)


async def media_frames_us(n: int = 20000) -> float:
    """Twilio: one inbound `media` message from our server (parse, decode, queue for playout)."""
    log = CallLog()
    line = Line(Clock(), log, lambda: None)
    stream = MediaStream(Stream("ws://127.0.0.1:1/x"), line, log, "MZ" + "0" * 32, "CA" + "0" * 32)
    payload = base64.b64encode(SPEECH[:FRAME_BYTES]).decode()
    raw = json.dumps({"event": "media", "streamSid": stream.sid, "media": {"payload": payload}})
    started = time.perf_counter()
    for _ in range(n):
        stream.handle(raw)
    return (time.perf_counter() - started) / n * 1e6


def deepgram_frames_us() -> float:
    """Deepgram: one 20 ms audio frame through the transcription state machine (decode, results)."""
    options = ListenOptions.from_query({
        "encoding": "mulaw", "sample_rate": "8000", "interim_results": "true", "endpointing": "300",
        "utterance_end_ms": "1000", "vad_events": "true", "punctuate": "true"})
    session = ListenSession(options, request_id="bench")
    frames = [SPEECH[i:i + FRAME_BYTES] for i in range(0, len(SPEECH) - FRAME_BYTES, FRAME_BYTES)]
    started = time.perf_counter()
    for frame in frames:
        session.audio(frame)
    assert "PA-48213" in session.transcript
    return (time.perf_counter() - started) / len(frames) * 1e6


async def _per_request_us(app: Any, request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
                          n: int) -> float:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        for _ in range(20):  # warm up
            (await request(client)).raise_for_status()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            (await request(client)).raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def http_figures(n: int = 300) -> dict[str, float]:
    async def ok(_: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    baseline = await _per_request_us(Starlette(routes=[Route("/", ok, methods=["POST"])]),
                                     lambda c: c.post("/", json={}), n)
    openai = create_openai_app(ReplyQueue(default="Sure, one moment."), ttft_s=0.0, tokens_per_s=1e9)
    anthropic = create_anthropic_app(ReplyQueue(default="Sure, one moment."), ttft_s=0.0, tokens_per_s=1e9)
    account, token = "AC" + "1" * 32, "twilio-bench-token"
    twilio = create_app(PhoneNetwork(accounts={account: token}))
    eleven = ElevenLabsEmulator(ttfb_s=0.0)
    deepgram = DeepgramEmulator(tts_ttfb_s=0.0)
    telegram = TelegramEmulator(flood_limits=FloodLimits.relaxed())
    user = telegram.user(id=1001)
    del user  # the chat must exist for sendMessage
    cases: dict[str, tuple[Any, Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]]] = {
        "openai chat completion (stream)": (openai.app, lambda c: c.post(
            "/v1/chat/completions", headers={"Authorization": "Bearer k"},
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})),
        "anthropic messages (stream)": (anthropic.app, lambda c: c.post(
            "/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={"model": "m", "stream": True, "max_tokens": 100,
                  "messages": [{"role": "user", "content": "hi"}]})),
        "twilio REST list calls": (twilio, lambda c: c.get(
            f"/2010-04-01/Accounts/{account}/Calls.json", auth=(account, token))),
        "elevenlabs TTS (HTTP stream)": (eleven.app, lambda c: c.post(
            "/v1/text-to-speech/v1/stream?output_format=ulaw_8000", headers={"xi-api-key": eleven.api_key},
            json={"text": "Hello there.", "model_id": "eleven_flash_v2_5"})),
        "deepgram TTS (REST)": (deepgram.app, lambda c: c.post(
            "/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000&container=none",
            headers={"Authorization": f"Token {deepgram.api_key}"}, json={"text": "Hello there."})),
        "telegram sendMessage": (telegram.app, lambda c: c.post(
            f"/bot{telegram.token}/sendMessage", data={"chat_id": "1001", "text": "hello"})),
    }
    out = {"(baseline: empty Starlette app)": baseline}
    for name, (app, request) in cases.items():
        out[name] = max(0.0, await _per_request_us(app, request, n) - baseline)
    return out


async def figures() -> dict[str, float]:
    rows = {"twilio media message (in)": await media_frames_us(),
            "deepgram STT audio frame": deepgram_frames_us()}
    rows.update(await http_figures())
    return rows


def main() -> None:
    rows = asyncio.run(figures())
    width = max(map(len, rows))
    print("emulator handling cost per message (median; HTTP rows minus the baseline)")
    for name, us in rows.items():
        print(f"  {name:<{width}}  {us / 1000:7.3f} ms")


if __name__ == "__main__":
    main()
