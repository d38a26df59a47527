"""sim.elevenlabs: HTTP via the real elevenlabs SDK, stream-input via a websockets client."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from elevenlabs import AsyncElevenLabs, ElevenLabs, VoiceSettings
from elevenlabs.core.api_error import ApiError

from sim import audio
from sim.codec import SpeechDecoder, encode_speech
from sim.elevenlabs import ElevenLabsEmulator
from sim.server import serve, serve_in_thread

KEY = "el-test-key"
VOICE = "21m00Tcm4TlvDq8ikWAM"


def words(data: bytes) -> list[str]:
    return [w.word for w in SpeechDecoder().feed(data)]


@pytest.fixture
async def el() -> AsyncIterator[tuple[ElevenLabsEmulator, str]]:
    emu = ElevenLabsEmulator(api_key=KEY)
    async with serve(emu.app) as url:
        yield emu, url


async def test_async_sdk_stream(el: tuple[ElevenLabsEmulator, str]) -> None:
    emu, url = el
    emu.ttfb_s = 0.05
    text = "Good morning, I'm calling about booking 555-0100."
    client = AsyncElevenLabs(api_key=KEY, base_url=url)
    chunks = [c async for c in client.text_to_speech.stream(
        VOICE, text=text, model_id="eleven_flash_v2_5", output_format="ulaw_8000",
    )]
    data = b"".join(chunks)
    assert data == encode_speech(text)
    assert words(data) == text.split()
    assert len(chunks) > 1
    assert emu.characters == len(text) and emu.requests[0]["model_id"] == "eleven_flash_v2_5"


def test_sync_sdk_stream_convert_speed_and_errors() -> None:
    emu = ElevenLabsEmulator(api_key=KEY)
    with serve_in_thread(emu.app) as url:
        client = ElevenLabs(api_key=KEY, base_url=url)
        text = "Thanks, goodbye."
        fast = b"".join(client.text_to_speech.stream(
            VOICE, text=text, output_format="ulaw_8000", voice_settings=VoiceSettings(speed=1.2),
        ))
        assert fast == encode_speech(text, rate=1.2)
        assert b"".join(client.text_to_speech.convert(VOICE, text=text, output_format="ulaw_8000")) == \
            encode_speech(text)
        with pytest.raises(ApiError) as err:
            b"".join(ElevenLabs(api_key="bad", base_url=url).text_to_speech.stream(
                VOICE, text=text, output_format="ulaw_8000"))
        assert err.value.status_code == 401
        assert err.value.body["detail"]["status"] == "invalid_api_key"
        with pytest.raises(ApiError) as err:
            b"".join(client.text_to_speech.stream(VOICE, text=text, output_format="ulaw_9999"))
        assert err.value.status_code == 422
        with pytest.raises(ApiError) as err:
            b"".join(client.text_to_speech.stream(VOICE, text=text, output_format="mp3_44100_128"))
        assert err.value.status_code == 400
        emu.faults.http_status, emu.faults.fail_count = 429, 1
        with pytest.raises(ApiError) as err:
            b"".join(client.text_to_speech.stream(VOICE, text=text, output_format="ulaw_8000"))
        assert err.value.status_code == 429


def ws_url(url: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"model_id": "eleven_flash_v2_5", **params}.items())
    return url.replace("http://", "ws://") + f"/v1/text-to-speech/{VOICE}/stream-input?{query}"


async def receive_all(sock: websockets.ClientConnection) -> list[dict]:
    messages = []
    while not (message := json.loads(await sock.recv())).get("isFinal"):
        messages.append(message)
    return messages


async def test_stream_input_schedule_flush_and_alignment(el: tuple[ElevenLabsEmulator, str]) -> None:
    emu, url = el
    async with websockets.connect(ws_url(url, output_format="ulaw_8000")) as sock:
        await sock.send(json.dumps({
            "text": " ", "xi_api_key": KEY, "voice_settings": {"stability": 0.5},
            "generation_config": {"chunk_length_schedule": [60, 80]},
        }))
        # 50 chars: below the first threshold, nothing generated yet.
        for piece in ["Hello there, ", "this is Alex ", "from the dental ", "clinic. "]:
            await sock.send(json.dumps({"text": piece}))
        await sock.send(json.dumps({"text": "Can you confirm your appoint"}))  # crosses 60: cut at a word end
        first = json.loads(await sock.recv())
        await sock.send(json.dumps({"text": "ment for Tuesday? ", "flush": True}))
        await sock.send(json.dumps({"text": ""}))
        rest = await receive_all(sock)
        with pytest.raises(websockets.ConnectionClosedOK):
            await sock.recv()
    messages = [first, *rest]
    assert emu.generations == [
        "Hello there, this is Alex from the dental clinic. Can you confirm your",
        "appointment for Tuesday?",
    ]
    data = b"".join(base64.b64decode(m["audio"]) for m in messages)
    assert " ".join(words(data)) == " ".join(emu.generations)
    alignment = first["alignment"]
    assert "".join(alignment["chars"]) == emu.generations[0]
    assert alignment == first["normalizedAlignment"] and first["isFinal"] is None
    # The alignment covers the chunk's audio exactly, and each word starts where the decoder heard it.
    chunk = base64.b64decode(first["audio"])
    assert alignment["charStartTimesMs"][-1] + alignment["charDurationsMs"][-1] == \
        pytest.approx(audio.ms_of(chunk), abs=2)
    heard = SpeechDecoder().feed(chunk)
    word_starts = [t for t, c, prev in zip(
        alignment["charStartTimesMs"], alignment["chars"], [" ", *alignment["chars"][:-1]], strict=True,
    ) if prev == " " and c != " "]
    assert word_starts == [pytest.approx(w.start_ms, abs=1) for w in heard]
    assert emu.characters == sum(len(g) for g in emu.generations)


async def test_stream_input_default_schedule_and_header_key(el: tuple[ElevenLabsEmulator, str]) -> None:
    emu, url = el
    async with websockets.connect(ws_url(url, output_format="ulaw_8000"),
                                  additional_headers={"xi-api-key": KEY}) as sock:
        await sock.send(json.dumps({"text": " "}))
        await sock.send(json.dumps({"text": "Short reply. ", "try_trigger_generation": True}))
        await sock.send(json.dumps({"text": "And the rest"}))
        await sock.send(json.dumps({"text": ""}))
        messages = await receive_all(sock)
    assert emu.generations == ["Short reply.", "And the rest"]
    data = b"".join(base64.b64decode(m["audio"]) for m in messages)
    assert words(data) == "Short reply. And the rest".split()


async def test_stream_input_refusals(el: tuple[ElevenLabsEmulator, str]) -> None:
    emu, url = el
    async with websockets.connect(ws_url(url, output_format="ulaw_8000")) as sock:
        await sock.send(json.dumps({"text": " ", "xi_api_key": "wrong"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_url(url, output_format="opus_48000_999x")):
            pass
    assert refused.value.response.status_code == 422
    async with websockets.connect(ws_url(url, output_format="ulaw_8000", inactivity_timeout="0.2")) as sock:
        await sock.send(json.dumps({"text": " ", "xi_api_key": KEY}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    emu.faults.drop_ws_after_s = 0.1
    async with websockets.connect(ws_url(url, output_format="ulaw_8000")) as sock:
        await sock.send(json.dumps({"text": " ", "xi_api_key": KEY}))
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
