"""TTS providers with the real SDKs against sim's emulators: streamed mu-law that decodes to the text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callserver.tts.deepgram import DeepgramTTS
from callserver.tts.elevenlabs import ElevenLabsTTS
from sim.codec import SpeechDecoder
from sim.deepgram import DeepgramEmulator
from sim.elevenlabs import ElevenLabsEmulator
from sim.server import serve

TEXT = "Hi, this is Alex calling about the invoice."


@pytest.fixture(params=["deepgram", "elevenlabs"])
async def tts(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Any]]:
    if request.param == "deepgram":
        emu: Any = DeepgramEmulator(api_key="dg", tts_ttfb_s=0.05, tts_realtime_factor=0.05)
        async with serve(emu.app) as url:
            yield emu, DeepgramTTS(api_key="dg", base_url=url)
    else:
        emu = ElevenLabsEmulator(api_key="el", ttfb_s=0.05, realtime_factor=0.05)
        async with serve(emu.app) as url:
            yield emu, ElevenLabsTTS(api_key="el", base_url=url, voice_id="v1")


async def test_audio_streams_in_chunks_and_carries_the_text(tts: tuple[Any, Any]) -> None:
    _, provider = tts
    decoder = SpeechDecoder()
    chunks: list[tuple[float, int]] = []
    start = time.perf_counter()
    heard = []
    async for chunk in provider.synthesize(TEXT):
        chunks.append((time.perf_counter() - start, len(chunk)))
        heard += decoder.feed(chunk)
    assert " ".join(w.word for w in heard) == TEXT
    assert len(chunks) > 5
    # Forwarded as generated: the first chunk comes long before the last one.
    assert chunks[-1][0] - chunks[0][0] > 0.05


async def test_cancelling_midway_stops_the_request(tts: tuple[Any, Any]) -> None:
    _, provider = tts

    async def consume() -> None:
        async for _ in provider.synthesize(TEXT * 5):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_elevenlabs_first_audio_is_passed_on_as_it_arrives() -> None:
    """A first network read under the SDK's default 1024-byte chunk is not held back for more audio."""
    emu = ElevenLabsEmulator(api_key="el", ttfb_s=0.0, chunk_ms=20, realtime_factor=5.0)  # 160 B / 100 ms
    async with serve(emu.app) as url:
        provider = ElevenLabsTTS(api_key="el", base_url=url, voice_id="v1")
        start = time.perf_counter()
        async for chunk in provider.synthesize(TEXT):
            first = (time.perf_counter() - start, len(chunk))
            break
        await provider.close()
    assert first[1] == 160 and first[0] < 0.08  # 1024 bytes would have taken 6 pieces, 500 ms


async def test_elevenlabs_responses_are_freed_without_the_cyclic_gc() -> None:
    """A finished or cancelled phrase leaves no httpx response cycle for a garbage collection to find
    (callserver.http_release), and the audio is the same whole phrase as before."""
    import gc

    import httpx

    emu = ElevenLabsEmulator(api_key="el", ttfb_s=0.0, realtime_factor=0.05)
    async with serve(emu.app) as url:
        provider = ElevenLabsTTS(api_key="el", base_url=url, voice_id="v1")
        async for _ in provider.synthesize("warm up"):  # the connection pool's own objects live on
            pass

        async def cancelled() -> None:
            async for _ in provider.synthesize(TEXT * 5):
                pass

        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            decoder = SpeechDecoder()
            heard = [w for chunk in [c async for c in provider.synthesize(TEXT)] for w in decoder.feed(chunk)]
            task = asyncio.create_task(cancelled())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, httpx.Response | httpx.Request)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        await provider.close()
    assert " ".join(w.word for w in heard) == TEXT
    assert left == []
