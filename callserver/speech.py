"""One utterance spoken: phrases in, audio out to the call in phrase order, TTS one phrase ahead.

Each phrase's TTS request goes out as soon as its text is cut (at most ``LOOKAHEAD`` phrases not yet
fully sent), so the next phrase's audio is generated while the current one still streams. Asking for
phrase N+1 only once phrase N's audio had all arrived put a TTS time to first byte between every two
phrases: after a short first phrase ("Sure,") the next audio came 60-80 ms before the callee's buffer
ran dry on an idle server, and at 100 calls the buffer did run dry, a hole in the sentence.

``short_of_audio`` tells the phrase splitter when the callee is about to run out of words: less than
``HURRY_AHEAD_MS`` of speech is queued or on its way, counting the phrases whose audio has not all
arrived at their estimated length. A later phrase may then end at a clause boundary, as the first one
does, instead of waiting for the end of a long sentence while the line goes quiet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from callserver.metrics import TurnTimer
from callserver.playback import BYTES_PER_MS, EST_BYTES_PER_CHAR, Playback, Segment, Utterance
from callserver.tts.base import TTS

LOOKAHEAD = 2
"""TTS requests of one utterance in flight: the phrase being sent and the next one."""
HURRY_AHEAD_MS = 1000.0
"""Below this much speech ahead of the listener, the next phrase is cut at its first clause boundary:
about a clause's generation (~10 tokens at 50-100 tokens/s) plus a TTS time to first byte (75-300 ms),
with margin for a loaded server."""


class _Phrase:
    __slots__ = ("audio", "received", "task", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received = 0
        self.task: asyncio.Task[None] | None = None


class Speech:
    def __init__(self, utt: Utterance, playback: Playback, tts: TTS, *, timer: TurnTimer | None = None,
                 log: Any) -> None:
        self.utt = utt
        self.playback = playback
        self.tts = tts
        self.timer = timer
        self._log = log
        self._phrases: asyncio.Queue[_Phrase | None] = asyncio.Queue()
        self._unsent: list[_Phrase] = []
        """Phrases put whose audio has not all been sent, in order."""
        self._slots = asyncio.Semaphore(LOOKAHEAD)

    def put(self, text: str) -> None:
        phrase = _Phrase(text)
        self._unsent.append(phrase)
        self._phrases.put_nowait(phrase)

    def put_all(self, texts: list[str]) -> None:
        for text in texts:
            self.put(text)
        self.end()

    def end(self) -> None:
        """No more phrases: ``run`` returns once the ones put have been sent."""
        self._phrases.put_nowait(None)

    def short_of_audio(self) -> bool:
        playback = self.playback
        ahead = playback.queued - playback.heard_position()
        for phrase in self._unsent:
            ahead += max(0, len(phrase.text) * EST_BYTES_PER_CHAR - phrase.received)
        return ahead < HURRY_AHEAD_MS * BYTES_PER_MS

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            order: asyncio.Queue[_Phrase | None] = asyncio.Queue()
            tg.create_task(self._request_all(tg, order))
            while (phrase := await order.get()) is not None:
                await self._send(phrase, self.playback.segment(self.utt, phrase.text))
                self._unsent.remove(phrase)
                self._slots.release()

    async def _request_all(self, tg: asyncio.TaskGroup, order: asyncio.Queue[_Phrase | None]) -> None:
        while (phrase := await self._phrases.get()) is not None:
            await self._slots.acquire()
            phrase.task = tg.create_task(self._synthesize(phrase))
            order.put_nowait(phrase)
        order.put_nowait(None)

    async def _synthesize(self, phrase: _Phrase) -> None:
        try:
            for attempt in (1, 2):
                try:
                    async for chunk in self.tts.synthesize(phrase.text):
                        phrase.received += len(chunk)
                        phrase.audio.put_nowait(chunk)
                    return
                except Exception as exc:  # one phrase lost is better than a dead call
                    self._log.warning("TTS failed on {!r} (attempt {}): {!r}", phrase.text, attempt, exc)
                    if phrase.received:
                        return  # part of it may already be playing: a retry would repeat it
        finally:
            phrase.audio.put_nowait(None)

    async def _send(self, phrase: _Phrase, seg: Segment) -> None:
        timer = self.timer
        try:
            while (chunk := await phrase.audio.get()) is not None:
                if timer:
                    timer.mark("tts_first_byte_ms")
                try:
                    sent = await self.playback.send(seg, chunk)
                except Exception as exc:  # the stream broke under us: the call goes on without it
                    self._log.warning("agent audio for {!r} not sent: {!r}", phrase.text, exc)
                    sent = False
                if not sent:
                    if phrase.task is not None:
                        phrase.task.cancel()  # nothing to play it on: stop paying for it
                    return
                if timer:
                    timer.mark("first_audio_ms")
        finally:
            seg.done = True

