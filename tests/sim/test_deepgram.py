"""sim.deepgram driven through the real deepgram-sdk (async client) over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment

from sim import audio
from sim.codec import SpeechDecoder, encode_speech
from sim.deepgram import DeepgramEmulator
from sim.deepgram_stt import ListenOptions, ListenSession
from sim.server import serve

KEY = "dg-test-key"
LIVE = {"model": "nova-3", "encoding": "mulaw", "sample_rate": 8000}


@pytest.fixture
async def dg() -> AsyncIterator[tuple[DeepgramEmulator, str]]:
    emu = DeepgramEmulator(api_key=KEY, idle_timeout_s=0.5)
    async with serve(emu.app) as url:
        yield emu, url


def client(url: str, key: str = KEY) -> AsyncDeepgramClient:
    ws = url.replace("http://", "ws://")
    env = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    return AsyncDeepgramClient(api_key=key, environment=env)


async def send_frames(socket: Any, data: bytes) -> None:
    for i in range(0, len(data), audio.FRAME_BYTES):
        await socket.send_media(data[i:i + audio.FRAME_BYTES])


async def collect(socket: Any, until: str, timeout: float = 3.0) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await socket.recv()
            got.append(message)
            if getattr(message, "type", None) == until:
                return got


def describe(messages: list[Any]) -> list[str]:
    out = []
    for m in messages:
        if m.type == "Results":
            kind = "final" if m.is_final else "interim"
            kind += "+speech_final" if m.speech_final else ""
            out.append(f"{kind}:{m.channel.alternatives[0].transcript}")
        else:
            out.append(m.type)
    return out


async def test_utterance_event_order(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    speech = encode_speech("Hello, I need a table.")
    async with client(url).listen.v1.connect(
        **LIVE, interim_results="true", endpointing=300, utterance_end_ms=1000, vad_events="true",
        punctuate="true", smart_format="true",
    ) as socket:
        await send_frames(socket, audio.silence(400) + speech + audio.silence(1500))
        messages = await collect(socket, "UtteranceEnd")
    assert describe(messages) == [
        "SpeechStarted",
        "interim:Hello,", "interim:Hello, I", "interim:Hello, I need", "interim:Hello, I need a",
        "interim:Hello, I need a table.",
        "final+speech_final:Hello, I need a table.",
        "UtteranceEnd",
    ]
    started, final, end = messages[0], messages[-2], messages[-1]
    assert started.timestamp == pytest.approx(0.4)
    assert started.channel == [0]
    words = final.channel.alternatives[0].words
    assert [w.word for w in words] == ["hello", "i", "need", "a", "table"]
    assert words[-1].punctuated_word == "table."
    assert words[0].start == pytest.approx(0.4)
    speech_end = 0.4 + audio.ms_of(speech) / 1000
    assert end.last_word_end == pytest.approx(speech_end, abs=0.002)
    assert end.channel == [0, 1]
    # The final covers the audio from the stream start up to where endpointing fired (300 ms after).
    assert final.start == 0 and final.duration == pytest.approx(speech_end + 0.3, abs=0.021)
    assert final.metadata.request_id == emu.sessions[0].request_id
    assert final.metadata.model_info.arch == "nova-3"
    assert final.channel_index == [0, 1] and final.from_finalize is False
    assert emu.audio_seconds == pytest.approx(0.4 + audio.ms_of(speech) / 1000 + 1.5)


async def test_defaults_no_interims_and_finals_per_pause(dg: tuple[DeepgramEmulator, str]) -> None:
    _, url = dg
    # Default endpointing is 10 ms: every gap between words ends a segment; without punctuate the
    # transcript is plain lower-case words.
    async with client(url).listen.v1.connect(**LIVE) as socket:
        await send_frames(socket, encode_speech("Yes, Two.") + audio.silence(300))
        got = [await socket.recv(), await socket.recv()]
    assert describe(got) == ["final+speech_final:yes", "final+speech_final:two"]
    assert got[1].start == pytest.approx(got[0].start + got[0].duration)


async def test_long_speech_is_finalised_without_speech_final(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    emu.max_segment_ms = 1000
    text = "one two three four five six seven eight nine ten"
    async with client(url).listen.v1.connect(**LIVE, endpointing=500) as socket:
        await send_frames(socket, encode_speech(text) + audio.silence(600))
        got = [await socket.recv()]
        while not got[-1].speech_final:
            got.append(await socket.recv())
    flags = [(m.is_final, m.speech_final) for m in got]
    assert flags == [(True, False), (True, False), (True, True)]
    assert all(m.duration <= 1.3 for m in got)
    assert " ".join(m.channel.alternatives[0].transcript for m in got) == text


async def test_finalize_and_close_stream(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    async with client(url).listen.v1.connect(**LIVE, endpointing="false", interim_results="true") as socket:
        await send_frames(socket, encode_speech("Account W123 please") + audio.silence(2000))
        got = [await socket.recv() for _ in range(3)]
        assert all(not m.is_final for m in got)
        await socket.send_finalize()
        flushed = await socket.recv()
        assert flushed.is_final and flushed.from_finalize and not flushed.speech_final
        assert flushed.channel.alternatives[0].transcript == "account w123 please"
        await send_frames(socket, encode_speech("thanks"))
        assert (await socket.recv()).channel.alternatives[0].transcript == "thanks"
        await socket.send_close_stream()
        final = await socket.recv()
        metadata = await socket.recv()
        assert final.is_final and final.channel.alternatives[0].transcript == "thanks"
        assert metadata.type == "Metadata" and metadata.request_id == emu.sessions[0].request_id
        assert metadata.duration == pytest.approx(emu.sessions[0].decoder.position_ms / 1000)
        with pytest.raises(websockets.ConnectionClosedOK):
            await socket.recv()
    assert emu.sessions[0].close_code == 1000
    assert emu.sessions[0].transcript == "Account W123 please thanks"


async def test_keepalive_then_idle_close(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg  # idle timeout 0.5 s
    async with client(url).listen.v1.connect(**LIVE) as socket:
        for _ in range(4):
            await asyncio.sleep(0.25)
            await socket.send_keep_alive()
        assert emu.sessions[0].close_code is None  # 1 s open: kept alive
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with asyncio.timeout(2):
                await socket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "NET-0001")


async def test_bad_key_is_refused_with_401(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    with pytest.raises(ApiError) as err:
        async with client(url, key="wrong").listen.v1.connect(**LIVE):
            pass
    assert err.value.status_code == 401
    assert emu.rejected == 1 and emu.sessions == []


async def test_drop_fault_and_http_fault(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    emu.idle_timeout_s = 10
    emu.faults.drop_ws_after_s = 0.2
    async with client(url).listen.v1.connect(**LIVE) as socket:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with asyncio.timeout(2):
                while True:
                    await socket.send_media(audio.silence(20))
                    await asyncio.sleep(0.02)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    emu.faults.reset()
    emu.faults.http_status, emu.faults.fail_count = 503, 1
    with pytest.raises(ApiError) as err:
        async with client(url).listen.v1.connect(**LIVE):
            pass
    assert err.value.status_code == 503
    async with client(url).listen.v1.connect(**LIVE) as socket:  # the fault is spent
        await socket.send_close_stream()
        assert (await socket.recv()).type == "Metadata"


async def test_drop_fault_switched_on_mid_stream_moves_the_deadline_earlier(
        dg: tuple[DeepgramEmulator, str]) -> None:
    """The listen socket arms one timer for its idle deadline; a drop fault set while it streams (and
    while the socket is quiet, kept alive) still closes it on time."""
    emu, url = dg
    emu.idle_timeout_s = 10
    async with client(url).listen.v1.connect(**LIVE) as socket:
        await send_frames(socket, audio.silence(200))
        await socket.send_keep_alive()
        await asyncio.sleep(0.1)
        emu.faults.drop_ws_after_s = 0.4  # counted from the socket's opening
        await socket.send_keep_alive()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with asyncio.timeout(2):
                await socket.recv()
        assert loop.time() - started < 1.0
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "emulated fault: connection dropped")


async def test_cut_word_is_not_transcribed(dg: tuple[DeepgramEmulator, str]) -> None:
    _, url = dg
    speech = encode_speech("please transfer me")
    cut = speech[: len(speech) - 800]  # "me" loses its last 100 ms: a barge-in clear
    async with client(url).listen.v1.connect(**LIVE, endpointing=300) as socket:
        await send_frames(socket, cut + audio.silence(500))
        final = await socket.recv()
    assert final.channel.alternatives[0].transcript == "please transfer"


async def test_speak_rest_streams_codec_audio(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    emu.tts_ttfb_s = 0.05
    text = "Hi, this is the assistant."
    chunks = [c async for c in client(url).speak.v1.audio.generate(
        text=text, model="aura-2-thalia-en", encoding="mulaw", sample_rate=8000, container="none",
    )]
    data = b"".join(chunks)
    assert [w.word for w in SpeechDecoder().feed(data)] == text.split()
    assert data == encode_speech(text)
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 320
    assert emu.characters == len(text)
    with pytest.raises(ApiError) as err:
        async for _ in client(url).speak.v1.audio.generate(text=text, encoding="linear16"):
            pass
    assert err.value.status_code == 400
    with pytest.raises(ApiError) as err:
        async for _ in client(url, key="nope").speak.v1.audio.generate(text=text, encoding="mulaw"):
            pass
    assert err.value.status_code == 401


async def test_speak_websocket_flush_and_clear(dg: tuple[DeepgramEmulator, str]) -> None:
    emu, url = dg
    emu.tts_realtime_factor = 0.5  # slow enough that a Clear lands mid-utterance
    ws = url.replace("http://", "ws://") + "/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000"
    async with websockets.connect(ws, additional_headers={"Authorization": f"Token {KEY}"}) as sock:
        assert sock.response is not None and sock.response.headers["dg-request-id"]
        assert '"Metadata"' in await sock.recv()
        await sock.send('{"type": "Speak", "text": "Your table "}')
        await sock.send('{"type": "Speak", "text": "is booked."}')
        await sock.send('{"type": "Flush"}')
        heard = bytearray()
        while isinstance(message := await sock.recv(), bytes):
            heard += message
        assert message == '{"type": "Flushed", "sequence_id": 0}'
        assert [w.word for w in SpeechDecoder().feed(bytes(heard))] == ["Your", "table", "is", "booked."]
        await sock.send('{"type": "Speak", "text": "A very long sentence that will be cleared soon."}')
        await sock.send('{"type": "Flush"}')
        partial = await sock.recv()
        await sock.send('{"type": "Clear"}')
        while isinstance(message := await sock.recv(), bytes):
            partial += message
        assert message == '{"type": "Cleared", "sequence_id": 2}'
        assert len(partial) < len(encode_speech("A very long sentence that will be cleared soon.")) / 2
        await sock.send('{"type": "Close"}')
        with pytest.raises(websockets.ConnectionClosedOK):
            await sock.recv()
    assert emu.characters == len("Your table is booked.A very long sentence that will be cleared soon.")


@pytest.mark.parametrize("max_segment_ms", [5000.0, 900.0])
def test_results_carry_each_heard_word_as_built_for_it(max_segment_ms: float) -> None:
    """Results reuse each word's JSON, built once when it is heard: finals partition what was heard, and
    every interim result is its segment's words so far, each as ``_word_json`` builds it."""
    options = ListenOptions(interim_results=True, endpointing=300, punctuate=True)
    session = ListenSession(options, "rid", max_segment_ms=max_segment_ms)
    speech = encode_speech("Hello there, account W123 please. Thanks a lot!")
    stream = (speech + audio.silence(600)) * 2 + speech
    for i in range(0, len(stream), audio.FRAME_BYTES):
        session.audio(stream[i:i + audio.FRAME_BYTES])
    session.finalize()
    expected = [session._word_json(w) for w in session.heard]
    results = [m for m in session.sent if m["type"] == "Results"]
    done = 0
    for message in results:
        words = message["channel"]["alternatives"][0]["words"]
        assert words == expected[done:done + len(words)]
        assert message["channel"]["alternatives"][0]["transcript"] == " ".join(
            w["punctuated_word"] for w in words)
        if message["is_final"]:
            done += len(words)
    assert done == len(expected) == 3 * 8
    interims = sum(not m["is_final"] for m in results)
    assert interims == len(expected) if max_segment_ms > 3000 else 0 < interims < len(expected)


def test_log_is_the_text_that_went_out() -> None:
    """``audio``, ``finalize`` and ``close_stream`` return the messages as the JSON text sent on the socket;
    the session logs that text as is (no dicts or lists kept for the GC to walk) and ``sent`` parses it
    back into the messages the session built."""
    options = ListenOptions(interim_results=True, endpointing=300, utterance_end_ms=1000, vad_events=True,
                            smart_format=True)
    session = ListenSession(options, "rid")
    built: list[dict[str, Any]] = []
    make = session._results

    def spy(**kwargs: Any) -> dict[str, Any]:
        built.append(make(**kwargs))
        return built[-1]

    session._results = spy  # type: ignore[method-assign]
    stream = encode_speech("Hello there, account W123 please.") + audio.silence(1200)
    returned: list[str] = []
    for i in range(0, len(stream), audio.FRAME_BYTES):
        returned += session.audio(stream[i:i + audio.FRAME_BYTES])
    returned += session.finalize() + session.close_stream()
    assert returned == session.sent_json
    assert all(type(text) is str for text in session.sent_json)
    assert session.sent == [json.loads(text) for text in returned]
    results = [m for m in session.sent if m["type"] == "Results"]
    assert results == built and len(results) > 5
    assert {m["type"] for m in session.sent} == {"SpeechStarted", "Results", "UtteranceEnd", "Metadata"}
