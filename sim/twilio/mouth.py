"""The callee's side of the line: what it sends into the call, one 20 ms frame at a time.

Scenarios queue labelled segments (a spoken word, a keyed digit, a beep); between segments the line
carries the background (hold music) or silence, because a real phone line never stops sending.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from sim.audio import FRAME_BYTES, MULAW_SILENCE, SILENT_FRAME


@dataclass
class Segment:
    kind: str
    """"word", "digit" or "sound"."""
    label: str
    audio: bytes
    done: asyncio.Future[None] | None = None
    offset: int = 0
    started_ms: float | None = None


@dataclass
class FrameOut:
    audio: bytes
    speech: bool
    """True when any part of the frame is a spoken word."""
    started: list[Segment] = field(default_factory=list)
    finished: list[Segment] = field(default_factory=list)


class Mouth:
    def __init__(self) -> None:
        self._segments: deque[Segment] = deque()
        self._background: bytes | None = None
        self._bg_pos = 0

    def queue(self, segment: Segment) -> None:
        self._segments.append(segment)

    def busy(self) -> bool:
        return bool(self._segments)

    def set_background(self, audio: bytes | None) -> None:
        self._background = audio or None
        self._bg_pos = 0

    def flush(self) -> None:
        """Stop talking at once (the callee hung up or was cut off)."""
        for seg in self._segments:
            if seg.done is not None and not seg.done.done():
                seg.done.set_result(None)
        self._segments.clear()

    def next_frame(self, frame_start_ms: float) -> FrameOut:
        if not self._segments:  # the callee is quiet (most frames): the background alone, no assembly
            return FrameOut(self._fill(FRAME_BYTES), False)
        out = bytearray()
        frame = FrameOut(b"", False)
        while self._segments and len(out) < FRAME_BYTES:
            seg = self._segments[0]
            if seg.started_ms is None:
                seg.started_ms = frame_start_ms + len(out) / 8
                frame.started.append(seg)
            take = seg.audio[seg.offset:seg.offset + FRAME_BYTES - len(out)]
            out += take
            seg.offset += len(take)
            frame.speech |= seg.kind == "word"
            if seg.offset >= len(seg.audio):
                self._segments.popleft()
                frame.finished.append(seg)
        if len(out) < FRAME_BYTES:
            out += self._fill(FRAME_BYTES - len(out))
        frame.audio = bytes(out)
        return frame

    def _fill(self, n: int) -> bytes:
        if not self._background:
            return SILENT_FRAME if n == FRAME_BYTES else bytes([MULAW_SILENCE]) * n
        bg = self._background
        out = bytearray()
        while len(out) < n:
            take = bg[self._bg_pos:self._bg_pos + n - len(out)]
            out += take
            self._bg_pos = (self._bg_pos + len(take)) % len(bg)
        return bytes(out)
