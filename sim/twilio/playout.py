"""The outbound (agent -> callee) jitter buffer of one call: audio and marks in arrival order.

Twilio plays bidirectional `media` in order, echoes a `mark` once every byte queued before it has
played, and on `clear` drops what is queued and echoes the pending marks at once
(twilio.com/docs/voice/media-streams/websocket-messages#send-a-mark-message / #send-a-clear-message).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.audio import MULAW_SILENCE


@dataclass
class PendingMark:
    name: str
    echo: Callable[[str], None]
    record: Any = None
    """Whatever the owner logs the echo by (a line: the mark's index in its ``CallLog.mark_rows``)."""


class Playout:
    def __init__(self) -> None:
        self._items: deque[bytes | PendingMark] = deque()
        self._head_offset = 0
        self.queued_bytes = 0

    def push_audio(self, data: bytes) -> None:
        if data:
            self._items.append(data)
            self.queued_bytes += len(data)

    def push_mark(self, mark: PendingMark) -> None:
        self._items.append(mark)

    def empty(self) -> bool:
        return not self._items

    def take(self, n: int) -> tuple[bytes, int, list[PendingMark]]:
        """Up to ``n`` bytes to play next (padded with silence), how many were real audio, and the marks
        whose audio is entirely inside this frame."""
        if self._items:
            head = self._items[0]
            offset = self._head_offset
            if not isinstance(head, PendingMark) and len(head) - offset > n:
                # The frame lies inside the head chunk with bytes of it left after, so no mark can be
                # due (most agent frames: a TTS chunk is up to 25 frames): a slice, no assembly.
                self._head_offset = offset + n
                self.queued_bytes -= n
                return head[offset:offset + n], n, []
        out = bytearray()
        marks: list[PendingMark] = []
        while self._items and (len(out) < n or isinstance(self._items[0], PendingMark)):
            head = self._items[0]
            if isinstance(head, PendingMark):
                marks.append(self._items.popleft())  # type: ignore[arg-type]
                continue
            want = n - len(out)
            chunk = head[self._head_offset:self._head_offset + want]
            out += chunk
            self._head_offset += len(chunk)
            if self._head_offset >= len(head):
                self._items.popleft()
                self._head_offset = 0
        real = len(out)
        self.queued_bytes -= real
        if real < n:
            out += bytes([MULAW_SILENCE]) * (n - real)
        return bytes(out), real, marks

    def clear(self) -> list[PendingMark]:
        """Drop queued audio; return the marks that were waiting on it."""
        marks = [item for item in self._items if isinstance(item, PendingMark)]
        self._items.clear()
        self._head_offset = 0
        self.queued_bytes = 0
        return marks
