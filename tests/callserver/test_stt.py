"""Deepgram live STT through the real deepgram-sdk against sim.deepgram, including a forced drop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callserver.stt.base import SpeechStarted, SttEvent, Transcript, UtteranceEnd
from callserver.stt.deepgram import DeepgramSTT, DeepgramSttStream
from callserver.stt.deepgram_socket import _without_deflate, tls_context
from sim import audio
from sim.codec import encode_speech
from sim.deepgram import DeepgramEmulator
from sim.server import serve

KEY = "dg-test-key"


@pytest.fixture
async def dg() -> AsyncIterator[tuple[DeepgramEmulator, DeepgramSTT]]:
    emu = DeepgramEmulator(api_key=KEY)
    async with serve(emu.app) as url:
        yield emu, DeepgramSTT(api_key=KEY, base_url=url, endpointing_ms=300, keepalive_s=0.2)


async def _feed(stream: DeepgramSttStream, data: bytes, realtime: float = 0.0) -> None:
    for i in range(0, len(data), audio.FRAME_BYTES):
        stream.push(data[i:i + audio.FRAME_BYTES])
        await asyncio.sleep(realtime * 0.02)


async def _until_speech_final(stream: DeepgramSttStream, got: list[SttEvent]) -> str:
    async with asyncio.timeout(5):
        async for event in stream.events():
            got.append(event)
            if isinstance(event, Transcript) and event.speech_final:
                return " ".join(e.text for e in got if isinstance(e, Transcript) and e.is_final and e.text)
    raise AssertionError("stream ended")


SILENCE = b"\xff" * 8000  # 1 s


Sim = tuple[DeepgramEmulator, DeepgramSTT]


async def test_transcribes_with_interims_vad_and_endpointing(dg: Sim) -> None:
    emu, stt = dg
    stream = stt.stream()
    runner = asyncio.create_task(stream.run())
    await _feed(stream, encode_speech("Hello, this is Smile Dental.") + SILENCE)
    got: list[SttEvent] = []
    assert await _until_speech_final(stream, got) == "Hello, this is Smile Dental."
    assert isinstance(got[0], SpeechStarted)
    assert any(isinstance(e, Transcript) and not e.is_final for e in got)
    async with asyncio.timeout(3):  # the UtteranceEnd backstop follows (utterance_end_ms=1000)
        await _feed(stream, SILENCE)
        async for event in stream.events():
            if isinstance(event, UtteranceEnd):
                break
    session = emu.sessions[0]
    assert session.options.encoding == "mulaw" and session.options.interim_results
    stream.close()
    await asyncio.wait_for(runner, 3)
    assert session.close_code == 1000  # CloseStream, not an abandoned socket


async def test_keepalive_keeps_an_idle_socket_open(dg: tuple[DeepgramEmulator, DeepgramSTT]) -> None:
    emu, stt = dg
    emu.idle_timeout_s = 0.5
    stream = stt.stream()
    runner = asyncio.create_task(stream.run())
    await asyncio.sleep(1.2)  # no audio at all: KeepAlive every 0.2 s
    assert stream.connections == 1 and stream.reconnects == 0
    stream.close()
    await asyncio.wait_for(runner, 3)


async def test_socket_drop_mid_turn_loses_nothing(dg: tuple[DeepgramEmulator, DeepgramSTT]) -> None:
    emu, stt = dg
    stream = stt.stream()
    runner = asyncio.create_task(stream.run())
    speech = encode_speech("My reference number is 4417, thanks.")
    half = len(speech) // 2
    await _feed(stream, speech[:half], realtime=0.1)
    await asyncio.sleep(0.1)
    emu.faults.drop_ws_after_s = 0.0  # the open socket is cut abnormally (1011)
    async with asyncio.timeout(3):
        while stream.reconnects == 0:  # noqa: ASYNC110 - polling a counter of the code under test
            await asyncio.sleep(0.01)
    emu.faults.reset()
    await _feed(stream, speech[half:] + SILENCE)
    got: list[SttEvent] = []
    assert await _until_speech_final(stream, got) == "My reference number is 4417, thanks."
    assert emu.sessions[0].close_code == 1011 and len(emu.sessions) >= 2
    stream.close()
    await asyncio.wait_for(runner, 3)


def test_listen_sockets_share_one_tls_context_and_skip_deflate() -> None:
    """Each wss:// connect would otherwise load the CA bundle on the event loop (23-38 ms per call start)."""
    seen: list[dict[str, object]] = []
    connect = _without_deflate(lambda uri, **kwargs: seen.append({"uri": uri, **kwargs}))
    connect("wss://api.deepgram.com/v1/listen?model=nova-3", extra_headers={})
    connect("wss://api.deepgram.com/v1/listen?model=nova-3", extra_headers={})
    connect("ws://127.0.0.1:8080/v1/listen")
    assert seen[0]["ssl"] is seen[1]["ssl"] is tls_context()
    assert "ssl" not in seen[2]  # plain ws (the emulator): no TLS
    assert all(call["compression"] is None for call in seen)

