"""The Deepgram stream reads and writes the SDK's websockets connection itself (callserver/stt/deepgram.py):
same wire bytes, same events as the SDK's typed path, and a working fallback if the SDK changes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from deepgram.core.unchecked_base_model import construct_type
from deepgram.listen.v1.socket_client import V1SocketClientResponse

from callserver.stt import deepgram as dg_module
from callserver.stt import deepgram_socket
from callserver.stt.base import SpeechStarted, SttEvent, Transcript, UtteranceEnd
from callserver.stt.deepgram import DeepgramSTT, DeepgramSttStream
from callserver.stt.deepgram_socket import media_sender, raw_websocket
from sim.codec import encode_speech
from sim.deepgram import DeepgramEmulator
from sim.deepgram_stt import ListenOptions, ListenSession, _control
from sim.server import serve

KEY = "dg-test-key"
Sim = tuple[DeepgramEmulator, DeepgramSTT]


@pytest.fixture
async def dg() -> AsyncIterator[Sim]:
    emu = DeepgramEmulator(api_key=KEY)
    async with serve(emu.app) as url:
        yield emu, DeepgramSTT(api_key=KEY, base_url=url, endpointing_ms=300, keepalive_s=0.2)


async def test_the_sdk_socket_still_holds_the_websocket_we_use(dg: Sim) -> None:
    """Fails loudly when a deepgram-sdk release renames or wraps ``AsyncV1SocketClient._websocket``
    (the stream would still work, on the SDK's slower typed path)."""
    _, stt = dg
    async with stt.client.listen.v1.connect(**stt.options) as socket:
        ws = raw_websocket(socket)
        assert ws is not None and ws is socket._websocket
        assert media_sender(socket) == ws.send
    assert raw_websocket(object()) is None


async def test_direct_sends_put_the_same_audio_on_the_wire_as_send_media(dg: Sim) -> None:
    emu, stt = dg
    speech = encode_speech("Thursday at nine works for me.")
    chunks = [speech[i:i + 160] for i in range(0, len(speech), 160)]
    for send in ("sdk", "direct"):
        async with stt.client.listen.v1.connect(**stt.options) as socket:
            out = socket.send_media if send == "sdk" else media_sender(socket)
            for chunk in chunks:
                await out(chunk)
            await socket.send_close_stream()
            async for _ in socket:  # until the server closes after CloseStream
                pass
    sdk, direct = emu.sessions[-2], emu.sessions[-1]
    assert sdk.audio_bytes == direct.audio_bytes == len(speech)
    assert sdk.sent[-1]["sha256"] == direct.sent[-1]["sha256"]  # Metadata: hash of the audio received
    assert sdk.transcript == direct.transcript == "Thursday at nine works for me."


def _emulator_messages() -> list[str]:
    """Every kind of message the Deepgram emulator sends, as the text on the wire."""
    session = ListenSession(request_id="equivalence", options=ListenOptions.from_query({
        "encoding": "mulaw", "sample_rate": "8000", "channels": "1", "interim_results": "true",
        "endpointing": "300", "utterance_end_ms": "1000", "vad_events": "true", "smart_format": "true",
    }))
    session.audio(encode_speech("Hello, this is Smile Dental. How can I help?") + b"\xff" * 12000)
    session.audio(encode_speech("My number is 4417."))
    session.finalize()  # a Results with from_finalize
    _control(session, "not json")  # an Error
    session.audio(encode_speech("Thanks"))
    session.close_stream()  # the last final, then Metadata
    return [json.dumps(m) for m in session.sent]


def _events(stream: DeepgramSttStream) -> list[SttEvent | None]:
    out = []
    while not stream._events.empty():
        out.append(stream._events.get_nowait())
    return out


async def test_our_parse_gives_the_same_events_as_the_sdk_typed_messages(dg: Sim) -> None:
    _, stt = dg
    texts = _emulator_messages()
    kinds = [json.loads(t)["type"] for t in texts]
    results = [json.loads(t) for t in texts if '"Results"' in t]
    assert {"Results", "SpeechStarted", "UtteranceEnd", "Metadata", "Error"} <= set(kinds)
    assert any(r["is_final"] for r in results) and any(not r["is_final"] for r in results)
    assert any(r["speech_final"] for r in results) and any(r["from_finalize"] for r in results)
    typed, ours = stt.stream(), stt.stream()
    for stream in (typed, ours):  # audio awaiting confirmation: finals trim it, the same way
        stream.push(b"\x10" * 8000 * 12)
    for text in texts:
        typed._on_typed(construct_type(type_=V1SocketClientResponse, object_=json.loads(text)))
        ours._on_text(text)
        assert _events(ours) == _events(typed)
        assert (ours._base, bytes(ours._unconfirmed)) == (typed._base, bytes(typed._unconfirmed))
    ours._on_text("{not json")  # skipped with a warning, as the SDK skips what it cannot parse
    ours._on_text("[1, 2]")
    assert _events(ours) == []


async def test_the_events_of_a_call_are_the_same_on_both_paths(dg: Sim,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end against the emulator: our reader, then (as if the SDK changed) the SDK's own path."""
    _, stt = dg
    audio = encode_speech("I'd like to book a cleaning, please.") + b"\xff" * 12000
    runs: list[list[SttEvent]] = []
    for path in ("ours", "sdk"):
        if path == "sdk":
            for module in (dg_module, deepgram_socket):
                monkeypatch.setattr(module, "raw_websocket", lambda socket: None)
        stream = stt.stream()
        runner = asyncio.create_task(stream.run())
        for i in range(0, len(audio), 160):
            stream.push(audio[i:i + 160])
        got: list[SttEvent] = []
        async with asyncio.timeout(5):
            async for event in stream.events():
                got.append(event)
                if isinstance(event, UtteranceEnd):
                    break
        stream.close()
        await asyncio.wait_for(runner, 3)
        runs.append(got)
    assert runs[0] == runs[1]
    assert isinstance(runs[0][0], SpeechStarted)
    assert any(isinstance(e, Transcript) and e.speech_final and "cleaning" in e.text for e in runs[0])


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []

    async def send_media(self, data: bytes) -> None:
        self.sent.append(("media", asyncio.get_running_loop().time()))

    async def send_keep_alive(self) -> None:
        self.sent.append(("keepalive", asyncio.get_running_loop().time()))

    async def send_close_stream(self) -> None:
        self.sent.append(("close", asyncio.get_running_loop().time()))


async def test_keepalive_only_after_keepalive_s_without_a_send(dg: Sim) -> None:
    """No timer per frame any more: one check per keepalive_s, KeepAlive only when nothing went out."""
    _, stt = dg
    stream = stt.stream()  # keepalive_s=0.2
    socket: Any = RecordingSocket()
    loop = asyncio.get_running_loop()
    sender = asyncio.create_task(stream._send(socket))
    for _ in range(30):  # 0.45 s of audio, one frame per 15 ms
        stream.push(b"\x10" * 160)
        await asyncio.sleep(0.015)
    last_audio = loop.time()
    await asyncio.sleep(0.5)  # then silence on the line: KeepAlive at ~0.2 and ~0.4 s
    stream.close()
    await asyncio.wait_for(sender, 1)
    kinds = [kind for kind, _ in socket.sent]
    assert kinds == ["media"] * 30 + ["keepalive", "keepalive", "close"]
    first, second = (t for kind, t in socket.sent if kind == "keepalive")
    assert 0.18 <= first - last_audio <= 0.3 and 0.18 <= second - first <= 0.3


async def test_frames_sent_from_push_stay_in_order_when_the_socket_buffer_is_full(dg: Sim) -> None:
    """An idle sender lets ``push`` send on its own stack; when the socket's buffer is full (flow control
    paused) that send is finished by a task, and the frames pushed meanwhile follow it, in order."""
    emu, stt = dg
    speech = encode_speech("Could we move it to Friday?")
    frames = [speech[i:i + 160] for i in range(0, len(speech), 160)]
    third = len(frames) // 3
    stream = stt.stream()
    async with stt.client.listen.v1.connect(**stt.options) as socket:
        sender = asyncio.create_task(stream._send(socket))
        await asyncio.sleep(0)
        for frame in frames[:third]:  # sent from push itself: no wake-up of the sender
            stream.push(frame)
            assert not stream._pending and stream._inflight is None
            await asyncio.sleep(0)
        socket._websocket.pause_writing()  # as the transport does when its write buffer is full
        for frame in frames[third:2 * third]:
            stream.push(frame)
            await asyncio.sleep(0)
        assert stream._inflight is not None and stream.bytes_sent == third * 160  # the first one waits
        socket._websocket.resume_writing()
        for frame in frames[2 * third:]:
            stream.push(frame)
            await asyncio.sleep(0)
        stream.close()
        await asyncio.wait_for(sender, 2)
        async for _ in socket:  # the server closes after CloseStream
            pass
    session = emu.sessions[-1]
    assert stream.bytes_sent == stream.bytes_pushed == session.audio_bytes == len(speech)
    assert session.transcript == "Could we move it to Friday?"
    assert session.sent[-1]["sha256"] == hashlib.sha256(speech).hexdigest()  # every byte, in order
    assert session.close_code == 1000
