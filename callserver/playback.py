"""Outbound audio to Twilio, and the truth about what the callee has actually heard.

Audio goes out as it arrives, in chunks of at most 40 ms, each followed by a ``mark``. Twilio echoes a
mark once the audio queued before it has played, so the position of the last echoed mark is how far
playback got. Text is mapped to audio per phrase (a ``Segment``): the words of a phrase count as heard
in proportion to its bytes played, whole words only and rounding down, so the agent never claims a
word the callee did not hear. On ``clear`` Twilio drops its buffer and echoes every pending mark at
once: those echoes are ignored, the heard position is the one from before the clear.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

CHUNK_BYTES = 320  # 40 ms of mu-law 8 kHz: the granularity of "how much was heard"
EST_BYTES_PER_CHAR = 480  # ~60 ms of speech per character, while a phrase's audio is still arriving
ATTACH_WAIT_S = 5.0


class AudioSink(Protocol):
    closed: bool

    async def send_audio(self, mulaw: bytes) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def send_clear(self) -> None: ...


@dataclass
class Segment:
    text: str
    start: int
    received: int = 0
    done: bool = False

    @property
    def end(self) -> int:
        return self.start + self.received

    def heard(self, played: int) -> str:
        if played >= self.end and self.done:
            return self.text
        if played <= self.start or not self.received:
            return ""
        total = self.received if self.done else max(self.received, len(self.text) * EST_BYTES_PER_CHAR)
        return heard_prefix(self.text, (played - self.start) / total)


@dataclass
class Utterance:
    """The audio of one assistant message: its phrases in order."""

    segments: list[Segment] = field(default_factory=list)
    interrupted: bool = False

    @property
    def sent_audio(self) -> bool:
        return any(s.received for s in self.segments)


def heard_prefix(text: str, fraction: float) -> str:
    """The whole words of ``text`` whose end lies within ``fraction`` of its length."""
    if fraction >= 1:
        return text
    limit = fraction * len(text)
    last_end = 0
    for match in re.finditer(r"\S+", text):
        if match.end() > limit:
            break
        last_end = match.end()
    return text[:last_end]


class Playback:
    def __init__(self) -> None:
        self.sink: AudioSink | None = None
        self._attached = asyncio.Event()
        self._names = itertools.count(1)
        self._pending: dict[str, int] = {}
        """Mark name -> stream position (bytes) it stands for, in send order."""
        self.queued = 0
        self.played = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # --- streams --------------------------------------------------------------------------------
    def attach(self, sink: AudioSink) -> None:
        self.sink = sink
        self._attached.set()

    def detach(self, sink: AudioSink) -> None:
        """The stream ended (TwiML replaced or call over): what was still buffered will not play."""
        if self.sink is not sink:
            return
        self.sink = None
        self._attached.clear()
        self._forget_pending()

    # --- sending --------------------------------------------------------------------------------
    def segment(self, utterance: Utterance, text: str) -> Segment:
        seg = Segment(text, start=self.queued)
        utterance.segments.append(seg)
        return seg

    async def send(self, seg: Segment, audio: bytes) -> bool:
        """Send audio for ``seg`` (chunk + mark each 40 ms); False if there is no stream to play it."""
        sink = await self._sink()
        if sink is None:
            return False
        for i in range(0, len(audio), CHUNK_BYTES):
            chunk = audio[i:i + CHUNK_BYTES]
            await sink.send_audio(chunk)
            seg.received += len(chunk)
            self.queued += len(chunk)
            name = f"a{next(self._names)}"
            self._pending[name] = self.queued
            await sink.send_mark(name)
        return True

    async def _sink(self) -> AudioSink | None:
        if self.sink is None or self.sink.closed:
            try:
                await asyncio.wait_for(self._attached.wait(), ATTACH_WAIT_S)
            except TimeoutError:
                logger.warning("no media stream to play agent audio on: dropped")
                return None
        return self.sink

    # --- what was heard -------------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        return self.queued > self.played

    def on_mark(self, name: str) -> None:
        position = self._pending.pop(name, None)
        if position is None:
            return  # an echo forced by clear, or from a stream already gone
        self.played = max(self.played, position)
        self._release()

    async def wait_played(self, position: int | None = None) -> None:
        """Until everything queued so far (or up to ``position``) has played, or can no longer play."""
        target = self.queued if position is None else position
        if self.played >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    def heard(self, utterance: Utterance) -> str:
        return " ".join(t for t in (s.heard(self.played) for s in utterance.segments) if t)

    def fully_played(self, utterance: Utterance) -> bool:
        return all(s.done and self.played >= s.end for s in utterance.segments)

    async def clear(self) -> None:
        """Barge-in: drop Twilio's buffered audio. Call ``heard`` before: after this nothing more plays."""
        sink = self.sink
        self._forget_pending()
        if sink is not None:
            await sink.send_clear()

    def _forget_pending(self) -> None:
        self._pending.clear()
        # Positions stay monotonic: audio sent from now on starts at `queued`, and nothing before it
        # will play any more.
        self.played = self.queued
        self._release()

    def _release(self) -> None:
        still = []
        for target, future in self._waiters:
            if self.played >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still
