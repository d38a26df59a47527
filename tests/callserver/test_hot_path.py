"""The per-frame path made cheap for bench/ (issue 4 performance) still does exactly what it did."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import numpy as np
import openai
import pytest
from starlette.websockets import WebSocketState

from callserver import audio
from callserver.history import History, ToolCallRecord
from callserver.llm.anthropic import AnthropicLLM
from callserver.llm.base import LLMError
from callserver.llm.openai import OpenAILLM
from callserver.stt.deepgram import QUIET_BATCH_BYTES, DeepgramSTT, is_quiet
from callserver.tools import default_registry, to_anthropic, to_openai
from callserver.twilio_stream import Media, MediaStream
from dialer.runtime import GC_THRESHOLDS, loop_factory, tune_gc
from sim.deepgram import DeepgramEmulator
from sim.server import serve

KEY = "dg-test-key"


@pytest.fixture
async def stt() -> AsyncIterator[DeepgramSTT]:
    emu = DeepgramEmulator(api_key=KEY)
    async with serve(emu.app) as url:
        yield DeepgramSTT(api_key=KEY, base_url=url, keepalive_s=0.05)


async def test_listen_socket_is_opened_without_permessage_deflate(stt: DeepgramSTT) -> None:
    async with stt.client.listen.v1.connect(**stt.options) as socket:
        assert socket._websocket.extensions == []
        await socket.send_media(b"\xff" * 160)  # and it still carries audio


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_media(self, data: bytes) -> None:
        self.sent.append(("media", data))

    async def send_keep_alive(self) -> None:
        self.sent.append(("keepalive", None))

    async def send_close_stream(self) -> None:
        self.sent.append(("close", None))


async def test_frames_waiting_for_the_sender_go_out_in_one_send_in_order(stt: DeepgramSTT) -> None:
    stream = stt.stream()
    frames = [bytes([i]) * 160 for i in range(5)]
    for frame in frames:
        stream.push(frame)
    socket = RecordingSocket()
    sender = asyncio.create_task(stream._send(socket))
    await asyncio.sleep(0.01)
    stream.push(b"\x07" * 160)
    await asyncio.sleep(0.01)
    stream.close()
    await asyncio.wait_for(sender, 1)
    media = [data for kind, data in socket.sent if kind == "media"]
    assert media == [b"".join(frames), b"\x07" * 160]
    assert socket.sent[-1] == ("close", None)
    assert stream.bytes_sent == stream.bytes_pushed == 6 * 160


async def test_an_idle_sender_sends_keepalives_then_audio_again(stt: DeepgramSTT) -> None:
    stream = stt.stream()
    socket = RecordingSocket()
    sender = asyncio.create_task(stream._send(socket))
    await asyncio.sleep(0.13)  # keepalive_s=0.05
    stream.push(b"\x01" * 160)
    await asyncio.sleep(0.01)
    stream.close()
    await asyncio.wait_for(sender, 1)
    kinds = [kind for kind, _ in socket.sent]
    assert kinds[:2] == ["keepalive", "keepalive"]
    assert kinds[-2:] == ["media", "close"]


async def test_a_long_silence_goes_out_in_200_ms_sends_and_sound_at_once(stt: DeepgramSTT) -> None:
    stream = stt.stream()
    socket = RecordingSocket()
    sender = asyncio.create_task(stream._send(socket))
    quiet, loud = audio.silence(20), b"\x10" * 160
    assert is_quiet(quiet) and is_quiet(audio.encode(np.full(160, 400.0))) and not is_quiet(loud)
    holdoff = stt.quiet_after_bytes // 160  # 1.5 s with Deepgram's defaults: endpointing and utterance end
    for _ in range(holdoff + 25):  # then 0.5 s more of it
        stream.push(quiet)
        await asyncio.sleep(0)
    stream.push(loud)  # the callee speaks: goes out now, with the quiet audio still waiting
    await asyncio.sleep(0)
    stream.push(quiet)  # right after sound, frames go one by one again
    await asyncio.sleep(0)
    stream.close()
    await asyncio.wait_for(sender, 1)
    sizes = [len(data) for kind, data in socket.sent if kind == "media"]
    assert sizes[:holdoff] == [160] * holdoff
    assert sizes[holdoff:] == [QUIET_BATCH_BYTES, QUIET_BATCH_BYTES, 5 * 160 + 160, 160]
    sent = b"".join(data for kind, data in socket.sent if kind == "media")
    assert sent == quiet * (holdoff + 25) + loud + quiet and socket.sent[-1] == ("close", None)


class CapturingWs:
    client_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send_text(self, text: str) -> None:
        self.texts.append(text)


async def test_prebuilt_media_and_mark_messages_are_the_documented_json() -> None:
    ws = CapturingWs()
    stream = MediaStream(ws, {"event": "start", "streamSid": "MZ\"odd\\sid", "start": {"callSid": "CA1"}})  # type: ignore[arg-type]
    audio_bytes = os.urandom(320)
    await stream.send_audio(audio_bytes)
    await stream.send_mark('a1 "quoted"')
    await stream.send_clear()
    media, mark, clear = (json.loads(t) for t in ws.texts)
    assert media == {"event": "media", "streamSid": "MZ\"odd\\sid",
                     "media": {"payload": base64.b64encode(audio_bytes).decode()}}
    assert base64.b64decode(media["media"]["payload"]) == audio_bytes
    assert mark == {"event": "mark", "streamSid": "MZ\"odd\\sid", "mark": {"name": 'a1 "quoted"'}}
    assert clear == {"event": "clear", "streamSid": "MZ\"odd\\sid"}


def test_table_rms_equals_rms_of_the_decoded_samples() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        frame = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
        pcm = audio.decode(frame).astype(np.float64)
        assert audio.rms(frame) == pytest.approx(float(np.sqrt(np.mean(pcm * pcm))), rel=1e-12)
    assert audio.rms(b"") == 0.0
    assert audio.rms(bytes([audio.MULAW_SILENCE]) * 160) == 0.0
    loud, quiet = b"\x00" * 160, bytes([audio.MULAW_SILENCE]) * 160
    assert audio.rms(loud) == audio.rms(loud) > 30_000  # asked twice per frame: the second is remembered
    assert audio.rms(quiet) == 0.0 and audio.rms(loud) > 30_000


def test_tone_share_finds_a_beep_with_the_cached_window() -> None:
    t = np.arange(160) / audio.SAMPLE_RATE
    beep = audio.encode(8000 * np.sin(2 * np.pi * 1000 * t))
    peak, share = audio.tone_share(beep)
    assert peak == 1000.0 and share > 0.9
    noise = np.random.default_rng(2).normal(0, 3000, 160)
    assert audio.tone_share(audio.encode(noise))[1] < 0.5
    assert audio.tone_share(beep[:100])[0] == pytest.approx(1040.0)  # another length, its own window


def _history() -> History:
    history = History("You are Ava. Be brief.")
    history.add_user("Hi, this is Smile Dental, how can I help?")
    asked = history.add_assistant("Hello! I'd like to move my appointment.",
                                  [ToolCallRecord("call_1", "note_fact", {"label": "ref", "value": "A-1"})])
    history.add_tool_result("call_1", "noted")
    history.add_note("The owner says: Tuesday works too.")
    history.add_user("Sure, which day?")
    history.interrupt(asked, "Hello! I'd like")
    history.add_user("Ünïcode \"quotes\" and\nnewlines")
    return history


def _capturing(bodies: list[bytes]) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(request.content)
        return httpx2.Response(500, json={"error": {"message": "captured", "type": "server_error"}})

    return handler


async def test_openai_request_body_is_what_the_typed_arguments_would_send() -> None:
    bodies: list[bytes] = []
    llm = OpenAILLM(api_key="k", base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini")
    llm.client = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(
                                        transport=httpx2.MockTransport(_capturing(bodies))))
    history, tools = _history(), default_registry().defs
    with pytest.raises(LLMError):
        async for _ in llm.stream(history, tools):
            pass
    with pytest.raises(openai.APIError):
        await llm.client.chat.completions.create(
            model="gpt-4o-mini", messages=history.to_openai(), tools=to_openai(tools),  # type: ignore[arg-type]
            stream=True, max_completion_tokens=llm.max_tokens, stream_options={"include_usage": True})
    ours, typed = (json.loads(b) for b in bodies)
    assert ours == typed and len(ours["messages"]) == len(history.to_openai()) > 5


async def test_anthropic_request_body_is_what_the_typed_arguments_would_send() -> None:
    bodies: list[bytes] = []
    llm = AnthropicLLM(api_key="k", base_url="http://127.0.0.1:9", model="claude-haiku-4-5")
    llm.client = anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9", max_retries=0,
                                          http_client=anthropic.DefaultAsyncHttpxClient(
                                              transport=httpx2.MockTransport(_capturing(bodies))))
    history, tools = _history(), default_registry().defs
    with pytest.raises(LLMError):
        async for _ in llm.stream(history, tools):
            pass
    system, messages = history.to_anthropic()
    with pytest.raises(anthropic.APIError):
        await llm.client.messages.create(
            model="claude-haiku-4-5", system=system, messages=messages,  # type: ignore[arg-type]
            tools=to_anthropic(tools), max_tokens=llm.max_tokens, stream=True)  # type: ignore[arg-type]
    ours, typed = (json.loads(b) for b in bodies)
    assert ours == typed and len(ours["messages"]) >= 3


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000  # modules, SDK types: out of every later full collection
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_loop_factory_gives_uvloop_where_installed() -> None:
    loop = loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_batched_levels_and_tone_shares_equal_the_per_frame_ones() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(160) / audio.SAMPLE_RATE
    frames = [rng.integers(0, 256, 160, dtype=np.uint8).tobytes() for _ in range(20)]
    frames += [audio.encode(8000 * np.sin(2 * np.pi * f * t)) for f in (440, 1000, 2900)]
    frames += [audio.silence(20), audio.encode(rng.normal(0, 3000, 160))]
    assert audio.levels(frames).tolist() == pytest.approx([audio.rms(f) for f in frames], rel=1e-12)
    assert audio.tone_shares(frames).tolist() == pytest.approx([audio.tone_share(f)[1] for f in frames],
                                                               rel=1e-9, abs=1e-12)
    mixed = [frames[0], frames[21][:100], b"", frames[3][:40]]  # other sizes: one by one, same answers
    assert audio.levels(mixed).tolist() == pytest.approx([audio.rms(f) for f in mixed])
    assert audio.tone_shares(mixed).tolist() == pytest.approx([audio.tone_share(f)[1] for f in mixed])
    assert audio.levels([]).size == 0 and audio.tone_shares([]).size == 0


def _media_frame(payload: bytes, compact: bool, track: str = "inbound", timestamp: str = "2380") -> str:
    encoded = base64.b64encode(payload).decode()
    body = {"track": track, "chunk": "120", "timestamp": timestamp, "payload": encoded}
    message = {"event": "media", "sequenceNumber": "123", "media": body, "streamSid": "MZ1"}
    return json.dumps(message, separators=(",", ":") if compact else (", ", ": "))


def test_media_fast_path_parses_as_json_would_and_falls_back_on_anything_odd() -> None:
    stream = MediaStream(CapturingWs(), {"streamSid": "MZ1", "start": {"callSid": "CA1"}})  # type: ignore[arg-type]
    audio_bytes = os.urandom(160)
    for compact in (True, False):
        media = stream._parse(_media_frame(audio_bytes, compact))
        assert media == Media(audio_bytes, 2380, "inbound")
        assert stream._parse(_media_frame(audio_bytes, compact, track="outbound")) is None  # not announced
    # Escaped slashes are valid JSON a fast path must not misread: json.loads takes these.
    escaped = _media_frame(b"\xff" * 160, True).replace("/", "\\/")
    assert stream._parse(escaped) == Media(b"\xff" * 160, 2380, "inbound")
    reordered = json.dumps({"event": "media", "streamSid": "MZ1", "media": {
        "payload": base64.b64encode(audio_bytes).decode()}})  # no track, no timestamp
    assert stream._parse(reordered) == Media(audio_bytes, 0, "inbound")
    assert stream._parse(_media_frame(audio_bytes, True).replace('"payload":"', '"payload":"*')) is None
    assert stream._parse(_media_frame(audio_bytes, True)[:-1]) is None  # truncated: malformed, skipped
    assert stream._parse(_media_frame(audio_bytes, True, timestamp="x")) is None
    forked = MediaStream(CapturingWs(), {"streamSid": "MZ1", "start": {"tracks": ["inbound", "outbound"]}})  # type: ignore[arg-type]
    assert forked._parse(_media_frame(audio_bytes, True, "outbound")) == Media(audio_bytes, 2380, "outbound")
