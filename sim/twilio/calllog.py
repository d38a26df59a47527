"""What happened on one call, kept for tests and benchmarks to read.

All times are call milliseconds on the network's clock (see ``clock.Clock``).
"""

from __future__ import annotations

import json
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
    received_text: list[tuple[float, str | bytes]] = field(default_factory=list, repr=False)
    """Every non-media message our server sent on a media stream, as it arrived, with its time (media
    messages, 50 a second, are counted in the stream's record instead of kept). Read ``received``."""
    sent_text: list[tuple[float, str]] = field(default_factory=list, repr=False)
    """Non-media messages the emulator sent (connected, start, dtmf, mark, stop), as sent. Read
    ``sent_events``."""
    digits: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, digit, source) with source "inband" (tones in the agent audio) or "play" (<Play digits>)."""
    heard: list[Word] = field(default_factory=list)
    """Words of the agent the callee heard in full."""
    said: list[Word] = field(default_factory=list)
    """Words the callee spoke."""
    keyed: list[tuple[float, str]] = field(default_factory=list)
    mark_rows: list[tuple[str, float, float | None, bool]] = field(default_factory=list, repr=False)
    """(name, received_ms, echoed_ms, cleared) of every mark the server sent, in order. Read ``marks``."""
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

    # What piles up all call long (a mark every TTS chunk of a reply, its echo) is kept as plain tuples
    # of str and numbers, turned into objects when read: the collector stops tracking such a tuple at
    # its first young collection, where a parsed message (a dict holding a dict) or a record object stays
    # tracked, walked again by every full collection until the run ends. At 100 calls
    # (bench/capacity.py) those were ~125,000 of the 183,000 objects a 177 ms full collection walked.
    @property
    def marks(self) -> list[MarkRecord]:
        """``mark_rows`` as records."""
        return [MarkRecord(*row) for row in self.mark_rows]

    @property
    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """``received_text`` parsed."""
        return [(ms, json.loads(text)) for ms, text in self.received_text]

    @property
    def sent_events(self) -> list[tuple[float, dict[str, Any]]]:
        """``sent_text`` parsed."""
        return [(ms, json.loads(text)) for ms, text in self.sent_text]

    def status_names(self) -> list[str]:
        return [s for s, _ in self.statuses]

    def heard_text(self) -> str:
        return " ".join(w.word for w in self.heard)

    def said_text(self) -> str:
        return " ".join(w.word for w in self.said)

    def error_codes(self) -> list[int]:
        return [code for _, code, _ in self.errors]
