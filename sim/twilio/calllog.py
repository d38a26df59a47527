"""What happened on one call, kept for tests and benchmarks to read.

All times are call milliseconds on the network's clock (see ``clock.Clock``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Word:
    word: str
    start_ms: float
    end_ms: float


@dataclass
class MarkRecord:
    name: str
    received_ms: float
    echoed_ms: float | None = None
    cleared: bool = False


@dataclass
class DialedLeg:
    number: str
    sid: str
    started_ms: float
    ended_ms: float | None = None


@dataclass
class CallLog:
    statuses: list[tuple[str, float]] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """Every non-media message our server sent on a media stream, parsed, with the time it arrived (media
    messages, 50 a second, are counted in the stream's record instead of kept)."""
    sent_events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """Non-media messages the emulator sent (connected, start, dtmf, mark, stop)."""
    digits: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, digit, source) with source "inband" (tones in the agent audio) or "play" (<Play digits>)."""
    heard: list[Word] = field(default_factory=list)
    """Words of the agent the callee heard in full."""
    said: list[Word] = field(default_factory=list)
    """Words the callee spoke."""
    keyed: list[tuple[float, str]] = field(default_factory=list)
    marks: list[MarkRecord] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    errors: list[tuple[float, int, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    dialed: list[DialedLeg] = field(default_factory=list)
    streams: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    response_gaps: list[tuple[float, float]] = field(default_factory=list)
    """(callee's last speech frame, first non-silent agent media received after it)."""
    barge_ins: list[tuple[float, float]] = field(default_factory=list)
    """(first callee speech frame over playing agent audio, the `clear` that followed)."""

    def status_names(self) -> list[str]:
        return [s for s, _ in self.statuses]

    def heard_text(self) -> str:
        return " ".join(w.word for w in self.heard)

    def said_text(self) -> str:
        return " ".join(w.word for w in self.said)

    def error_codes(self) -> list[int]:
        return [code for _, code, _ in self.errors]
