"""Speaking an utterance: the next phrase's TTS runs while the current one streams, audio stays in order,
and a later phrase is cut early when the callee is about to run out of audio. Real ElevenLabs SDK against
sim's emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from loguru import logger

from callserver.phrases import PhraseSplitter
from callserver.playback import EST_BYTES_PER_CHAR, Playback, Utterance
from callserver.speech import HURRY_AHEAD_MS, LOOKAHEAD, Speech
from callserver.tts.elevenlabs import ElevenLabsTTS
from sim.codec import SpeechDecoder
from sim.elevenlabs import ElevenLabsEmulator
from sim.server import serve

PHRASES = ["Sure,", "let me explain how this works:", "I check the time,", "then I confirm it."]


class AudioSink:
    """The AudioSink a MediaStream is, keeping the audio bytes in send order."""

    def __init__(self) -> None:
        self.closed = False
        self.audio = bytearray()
        self.got_audio = asyncio.Event()

    async def send_audio(self, mulaw: bytes) -> None:
        self.audio += mulaw
        self.got_audio.set()

    async def send_mark(self, name: str) -> None:
        return None

    async def send_clear(self) -> None:
        return None


class Timed:
    """The real provider, with when each phrase's request started and ended and how many overlapped."""

    def __init__(self, tts: ElevenLabsTTS) -> None:
        self.tts = tts
        self.name = tts.name
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.in_flight = 0
        self.most_in_flight = 0

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.started[text] = time.monotonic()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async for chunk in self.tts.synthesize(text):
                yield chunk
        finally:
            self.in_flight -= 1
            self.ended[text] = time.monotonic()

    async def close(self) -> None:
        await self.tts.close()


@pytest.fixture
async def tts() -> AsyncIterator[tuple[ElevenLabsEmulator, Timed]]:
    # Generation at half real time: a phrase's audio keeps arriving well after its first byte.
    emu = ElevenLabsEmulator(api_key="el", ttfb_s=0.05, chunk_ms=100, realtime_factor=0.5)
    async with serve(emu.app) as url:
        provider = Timed(ElevenLabsTTS(api_key="el", base_url=url, voice_id="v1"))
        yield emu, provider
        await provider.close()


def _speech(tts: Any) -> tuple[Speech, Playback, AudioSink, Utterance]:
    playback, sink, utt = Playback(), AudioSink(), Utterance()
    playback.attach(sink)
    return Speech(utt, playback, tts, log=logger), playback, sink, utt


async def test_next_phrase_is_requested_while_the_current_one_streams(
        tts: tuple[ElevenLabsEmulator, Timed]) -> None:
    _, provider = tts
    speech, _, sink, utt = _speech(provider)
    speech.put_all(PHRASES)
    await speech.run()
    long_one, after = PHRASES[1], PHRASES[2]
    assert provider.started[after] < provider.ended[long_one]  # fetched ahead, not after it
    assert provider.most_in_flight == LOOKAHEAD
    # Still played strictly in order, each phrase whole, each segment where its audio is.
    heard = [w.word for w in SpeechDecoder().feed(bytes(sink.audio))]
    assert " ".join(heard) == " ".join(PHRASES)
    assert [s.text for s in utt.segments] == PHRASES
    assert all(s.done for s in utt.segments)
    assert [s.start for s in utt.segments[1:]] == [s.end for s in utt.segments[:-1]]


async def test_cancelled_speech_leaves_no_request_running(tts: tuple[ElevenLabsEmulator, Timed]) -> None:
    _, provider = tts
    speech, _, sink, utt = _speech(provider)
    speech.put_all(PHRASES)
    task = asyncio.create_task(speech.run())
    await sink.got_audio.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.in_flight == 0
    assert len(provider.ended) == len(provider.started) < len(PHRASES)
    assert utt.segments and len(utt.segments) < len(PHRASES)


async def test_a_failed_phrase_is_skipped_and_the_rest_is_spoken(
        tts: tuple[ElevenLabsEmulator, Timed]) -> None:
    _, provider = tts
    speech, _, sink, utt = _speech(provider)
    speech.put_all([" ", PHRASES[1]])  # ElevenLabs refuses empty text (400), on the retry too
    await speech.run()
    heard = [w.word for w in SpeechDecoder().feed(bytes(sink.audio))]
    assert " ".join(heard) == PHRASES[1]
    assert [s.received > 0 for s in utt.segments] == [False, True]


async def test_short_of_audio_counts_queued_audio_and_text_still_to_come(
        tts: tuple[ElevenLabsEmulator, Timed]) -> None:
    _, provider = tts
    speech, playback, _, _ = _speech(provider)
    assert speech.short_of_audio()  # nothing to say yet
    speech.put("Sure,")  # ~0.3 s at the estimated rate
    assert len("Sure,") * EST_BYTES_PER_CHAR < HURRY_AHEAD_MS * 8 and speech.short_of_audio()
    speech.put(PHRASES[1])  # ~1.8 s more
    assert not speech.short_of_audio()
    speech.end()
    await speech.run()
    # All of it queued at the phone and none of it heard yet: ahead is the real audio now.
    assert playback.queued > HURRY_AHEAD_MS * 8
    assert not speech.short_of_audio()


def test_a_hurried_splitter_cuts_later_phrases_at_clause_boundaries() -> None:
    text = ("Sure, let me explain how this works: I will check the appointment time, then confirm the "
            "address with you, and finally send a reminder message the day before the visit.")

    def stream(hurry: bool) -> list[str]:
        splitter = PhraseSplitter(hurry=lambda: hurry)
        out = [p for i in range(0, len(text), 4) for p in splitter.push(text[i:i + 4])]
        rest = splitter.flush()
        return [*out, rest] if rest else out

    # Unhurried: after the first phrase, sentences, or a clause boundary past 80 characters.
    assert stream(False) == [
        "Sure,", "let me explain how this works: I will check the appointment time, then confirm the address "
        "with you,", "and finally send a reminder message the day before the visit."]
    assert stream(True)[:3] == [
        "Sure,", "let me explain how this works:", "I will check the appointment time,"]
