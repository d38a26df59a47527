"""Outbound audio to Twilio, and the truth about what the callee has actually heard.

Audio goes out as it arrives: each TTS chunk is one ``media`` message (at most 0.5 s; a longer chunk is
split) followed by one ``mark``. Two WebSocket messages per chunk instead of per 40 ms: both ends pay
per message (JSON, framing, a task wake-up), and at 100 calls that was most of the outbound cost.
Twilio echoes a mark once the audio queued before it has played, so the last echoed mark is how far
playback surely got (``played``: what ``wait_played`` and ``speaking`` use). Between two marks the
heard position is interpolated (``heard_position``): playback of the next chunk started when the last
mark was echoed or when the chunk was sent, whichever is later, and runs at 8 bytes per ms; a margin
(the one-way trip to Twilio) is taken off, and it never passes the next pending mark. Text is mapped to
audio per phrase (a ``Segment``): the words of a phrase count as heard in proportion to its bytes
heard, whole words only and rounding down, so the agent never claims a word the callee did not hear.
On ``clear`` Twilio drops its buffer and echoes every pending mark at once: those echoes are ignored,
the heard position is the one from before the clear.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

MAX_MEDIA_BYTES = 4000
"""0.5 s of mu-law 8 kHz per ``media`` message: a longer TTS chunk is split, each part with its mark."""
BYTES_PER_MS = 8
HEARD_MARGIN_MS = 120.0
"""Taken off the interpolated position: our audio reaches Twilio's buffer some time after we send it."""
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
        self._pending: deque[tuple[str, int, float]] = deque()
        """(mark name, stream position in bytes it stands for, monotonic time sent), in send order."""
        self.queued = 0
        self.played = 0
        self._played_at = 0.0
        """When ``played`` last moved (a mark echo or a clear): monotonic seconds."""
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
        """Send audio for ``seg`` now (media + mark per 0.5 s); False if there is no stream to play it."""
        sink = await self._sink()
        if sink is None:
            return False
        for i in range(0, len(audio), MAX_MEDIA_BYTES):
            chunk = audio[i:i + MAX_MEDIA_BYTES]
            await sink.send_audio(chunk)
            seg.received += len(chunk)
            self.queued += len(chunk)
            name = f"a{next(self._names)}"
            self._pending.append((name, self.queued, time.monotonic()))
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
        pending = self._pending
        if not pending or (pending[0][0] != name and all(n != name for n, _, _ in pending)):
            return  # an echo forced by clear, or from a stream already gone
        while True:  # echoes come in send order: any mark before this one has played too
            mark, position, _ = pending.popleft()
            if mark == name:
                break
        self.played = max(self.played, position)
        self._played_at = time.monotonic()
        self._release()

    def heard_position(self, now: float | None = None) -> int:
        """Bytes the callee has heard by ``now``: the last echoed mark plus the time the next chunk has
        been playing (since that echo or since it was sent, the later) at 8 bytes per ms, less
        ``HEARD_MARGIN_MS``; never past the next pending mark (its echo would say so)."""
        if not self._pending:
            return self.played
        _, end, sent_at = self._pending[0]
        now = time.monotonic() if now is None else now
        playing_ms = (now - max(self._played_at, sent_at)) * 1000 - HEARD_MARGIN_MS
        if playing_ms <= 0:
            return self.played
        return min(end, self.played + int(playing_ms * BYTES_PER_MS))

    async def wait_played(self, position: int | None = None) -> None:
        """Until everything queued so far (or up to ``position``) has played, or can no longer play."""
        target = self.queued if position is None else position
        if self.played >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    def heard(self, utterance: Utterance) -> str:
        position = self.heard_position()
        return " ".join(t for t in (s.heard(position) for s in utterance.segments) if t)

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
        self._played_at = time.monotonic()
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
