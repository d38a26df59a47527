"""One utterance spoken: phrases in, audio out to the call in phrase order, TTS one phrase ahead.

The phrase at the head is synthesized in ``run`` itself, its chunks sent as they arrive (no hand-over
between tasks on the way to the first audio). While it streams, the TTS request for the next phrase is
already out (``LOOKAHEAD``), its audio kept until its turn. Asking for phrase N+1 only once phrase N's
audio had all arrived put a TTS time to first byte between every two phrases: after a short first
phrase ("Sure,") the next audio came 60-80 ms before the callee's buffer ran dry on an idle server, and
at 100 calls the buffer did run dry, a hole in the sentence.

``short_of_audio`` tells the phrase splitter when the callee is about to run out of words: less than
``HURRY_AHEAD_MS`` of speech is queued or on its way, counting the phrases whose audio has not all
arrived at their estimated length. A later phrase may then end at a clause boundary, as the first one
does, instead of waiting for the end of a long sentence while the line goes quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
        self.received = 0
        self.task: asyncio.Task[None] | None = None
        """Set when the phrase is fetched ahead; its chunks then wait in ``audio`` (None ends them)."""
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue()


class Speech:
    def __init__(self, utt: Utterance, playback: Playback, tts: TTS, *, timer: TurnTimer | None = None,
                 log: Any) -> None:
        self.utt = utt
        self.playback = playback
        self.tts = tts
        self.timer = timer
        self._log = log
        self._unsent: list[_Phrase] = []
        """Phrases put whose audio has not all been sent, in order; the first one is being sent."""
        self._sending = False
        self._ended = False
        self._more = asyncio.Event()

    def put(self, text: str) -> None:
        self._unsent.append(_Phrase(text))
        if self._sending:
            self._fetch_ahead()
        self._more.set()

    def put_all(self, texts: list[str]) -> None:
        for text in texts:
            self.put(text)
        self.end()

    def end(self) -> None:
        """No more phrases: ``run`` returns once the ones put have been sent."""
        self._ended = True
        self._more.set()

    def short_of_audio(self) -> bool:
        playback = self.playback
        ahead = playback.queued - playback.heard_position()
        for phrase in self._unsent:
            ahead += max(0, len(phrase.text) * EST_BYTES_PER_CHAR - phrase.received)
        return ahead < HURRY_AHEAD_MS * BYTES_PER_MS

    async def run(self) -> None:
        try:
            while True:
                if not self._unsent:
                    if self._ended:
                        return
                    self._more.clear()
                    await self._more.wait()
                    continue
                phrase = self._unsent[0]
                seg = self.playback.segment(self.utt, phrase.text)
                self._sending = True
                self._fetch_ahead()
                try:
                    await self._send(phrase, seg)
                finally:
                    seg.done = True
                    self._sending = False
                self._unsent.pop(0)
        finally:
            await self._cancel_fetches()

    def _fetch_ahead(self) -> None:
        for phrase in self._unsent[1:LOOKAHEAD]:
            if phrase.task is None:
                phrase.task = asyncio.create_task(self._fetch(phrase))

    async def _fetch(self, phrase: _Phrase) -> None:
        try:
            async with contextlib.aclosing(self._synthesize(phrase)) as chunks:
                async for chunk in chunks:
                    phrase.audio.put_nowait(chunk)
        finally:
            phrase.audio.put_nowait(None)

    async def _synthesize(self, phrase: _Phrase) -> AsyncIterator[bytes]:
        for attempt in (1, 2):
            try:
                async for chunk in self.tts.synthesize(phrase.text):
                    phrase.received += len(chunk)
                    yield chunk
                return
            except Exception as exc:  # one phrase lost is better than a dead call
                self._log.warning("TTS failed on {!r} (attempt {}): {!r}", phrase.text, attempt, exc)
                if phrase.received:
                    return  # part of it may already be playing: a retry would repeat it

    async def _send(self, phrase: _Phrase, seg: Segment) -> None:
        if phrase.task is None:
            async with contextlib.aclosing(self._synthesize(phrase)) as chunks:
                async for chunk in chunks:
                    if not await self._play(phrase, seg, chunk):
                        return
            return
        while (chunk := await phrase.audio.get()) is not None:
            if not await self._play(phrase, seg, chunk):
                phrase.task.cancel()  # nothing to play it on: stop paying for it
                return

    async def _play(self, phrase: _Phrase, seg: Segment, chunk: bytes) -> bool:
        timer = self.timer
        if timer:
            timer.mark("tts_first_byte_ms")
        try:
            sent = await self.playback.send(seg, chunk)
        except Exception as exc:  # the stream broke under us: the call goes on without this audio
            self._log.warning("agent audio for {!r} not sent: {!r}", phrase.text, exc)
            return False
        if timer and sent:
            timer.mark("first_audio_ms")
        return sent

    async def _cancel_fetches(self) -> None:
        tasks = [p.task for p in self._unsent if p.task is not None and not p.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
