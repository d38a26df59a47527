"""Leaving a voicemail: when to start talking (after the beep), what to say, and what the summary says.

Two signals, whichever comes first: Twilio's asynchronous answering machine detection with
``DetectMessageEnd`` (twilio.com/docs/voice/answering-machine-detection: ``machine_end_beep`` /
``machine_end_silence`` / ``machine_end_other`` arrive when the greeting is over, so we speak at once),
and our own ear: a greeting in voicemail language ("leave a message after the tone") arms the drop,
which then waits for the beep (one steady sine, found by a per-frame spectrum) or, with no beep, for a
short quiet after the greeting. Only then is the message spoken: words spoken over the greeting are not
recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from callserver.audio import rms, tone_share, tone_shares

GREETING = re.compile("|".join([
    r"\bleave\s+(?:me\s+|us\s+)?(?:a\s+|your\s+)?(?:brief\s+|short\s+|detailed\s+)?message\b",
    r"\bafter\s+the\s+(?:tone|beep)\b",
    r"\bat\s+the\s+(?:tone|beep)\b",
    r"\b(?:can't|cannot|can\s+not)\s+(?:take|come\s+to|answer)\s+(?:your\s+call|the\s+phone)\b",
    r"\b(?:is\s+)?not\s+available\s+to\s+take\s+your\s+call\b",
    r"\bvoice\s?mail\b",
    r"\bmailbox\b",
    r"\brecord\s+your\s+message\b",
]), re.IGNORECASE)
LEFT_REASON = "voicemail left"
BEEP_MIN_MS = 120  # shorter steady tones are likely DTMF or a music note
BEEP_RMS = 600.0
BEEP_SHARE = 0.9
NO_BEEP_WAIT_MS = 2500
"""Greeting over and no beep heard: some boxes do not beep; speak after this much quiet."""
RECENT_BEEP_MS = 3000


def is_greeting(text: str) -> bool:
    return bool(GREETING.search(text))


def message_for(info: Any, settings: Any) -> str:
    """The per-call message, else the configured one, else one derived from the task."""
    configured = (info.options.get("voicemail_message") or settings.voicemail_message or "").strip()
    if configured:
        return str(configured)
    task = info.task.strip().rstrip(".")
    callback = f" You can reach us at {_spoken_number(info.owner_number)}." if info.owner_number else ""
    return (f"Hello, this is {settings.agent_name}, an AI assistant, calling about the following: {task}."
            f"{callback} Please call back at your convenience. Thank you, goodbye.")


def _spoken_number(number: str) -> str:
    return " ".join(number.lstrip("+"))


@dataclass
class BeepDetector:
    """Steady single-frequency tone runs in the inbound audio, on the call's media clock."""

    run_ms: float = 0.0
    last_end_ms: float | None = None

    def feed(self, frame: bytes, now_ms: float) -> None:
        self.feed_tonal(len(frame) / 8, is_tonal(frame), now_ms)

    def feed_tonal(self, frame_ms: float, tonal: bool, now_ms: float) -> None:
        """One frame already judged by ``is_tonal`` (or ``tonal_frames``, several at once)."""
        if tonal:
            self.run_ms += frame_ms
        else:
            if self.run_ms >= BEEP_MIN_MS:
                self.last_end_ms = now_ms
            self.run_ms = 0.0


def is_tonal(frame: bytes) -> bool:
    """Loud, and nearly all of its energy in one narrow peak: a frame of a beep."""
    return rms(frame) >= BEEP_RMS and tone_share(frame)[1] >= BEEP_SHARE


def tonal_frames(frames: list[bytes], frame_levels: np.ndarray) -> np.ndarray:
    """``is_tonal`` of each frame, given their ``rms``: one batched spectrum over the loud ones only."""
    tonal = np.zeros(len(frames), dtype=bool)
    loud = np.flatnonzero(frame_levels >= BEEP_RMS)
    if loud.size:
        tonal[loud] = tone_shares([frames[i] for i in loud]) >= BEEP_SHARE
    return tonal


@dataclass
class VoicemailDrop:
    """idle -> armed (greeting heard, waiting for the beep) -> leaving (speaking) -> left."""

    state: str = "idle"
    armed_at_ms: float = 0.0
    by: str = ""
    message: str = ""

    def arm(self, now_ms: float, by: str) -> None:
        if self.state == "idle":
            self.state, self.armed_at_ms, self.by = "armed", now_ms, by

    def ready(self, beeps: BeepDetector, now_ms: float) -> bool:
        """Armed and the beep is over (or no beep came): time to speak."""
        if self.state != "armed":
            return False
        if beeps.last_end_ms is not None and beeps.last_end_ms >= self.armed_at_ms - RECENT_BEEP_MS:
            return True
        return beeps.run_ms == 0 and now_ms - self.armed_at_ms >= NO_BEEP_WAIT_MS


def summary_of(lines: list[tuple[str, str]]) -> str:
    """The summary of a call that ended in a voicemail: the message as the box recorded it."""
    said = [text for speaker, text in lines if speaker == "agent"]
    message = said[-1] if said else ""
    return f"Voicemail left: \u201c{message}\u201d" if message else "Voicemail reached; no message was left."
