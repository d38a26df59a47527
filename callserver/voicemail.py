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
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from callserver.audio import BYTES_PER_MS, rms, tone_share, tone_shares

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
class UnjudgedAudio:
    """Inbound frames heard while no voicemail drop is armed, kept unjudged for the beep detector.

    The detector's state only matters once a drop is armed (``VoicemailDrop.ready``), so until then the
    frames are not run through a spectrum (an FFT per loud frame, i.e. every speech frame of every call);
    the most recent ones are kept and judged once, in order, when the drop is armed. Keeping the last
    ``RECENT_BEEP_MS + BEEP_MIN_MS`` plus the longest frame of fed audio gives the same ``ready`` answers as
    judging every frame as it came: a beep run ending ``RECENT_BEEP_MS`` or less before arming has at least
    ``BEEP_MIN_MS`` of its audio kept (only the audio after its last tonal frame can follow it, and that is at
    most ``RECENT_BEEP_MS`` plus the frame ending it); an older one cannot make the drop ready; a run still
    going has its whole length kept when shorter than the window, else is judged long enough either way."""

    batches: deque[tuple[list[bytes], list[float], np.ndarray, float]] = field(default_factory=deque)
    """(frames, their durations in ms, their ``rms``, media clock at the end of the last), oldest first."""
    ms: float = 0.0
    """Audio held, ms."""
    longest_ms: float = 0.0

    def add(self, frames: list[bytes], frames_ms: list[float], levels: np.ndarray, end_ms: float) -> None:
        self.batches.append((frames, frames_ms, levels, end_ms))
        self.ms += sum(frames_ms)
        self.longest_ms = max(self.longest_ms, max(frames_ms))
        keep_ms = RECENT_BEEP_MS + BEEP_MIN_MS + self.longest_ms
        while len(self.batches) > 1 and self.ms - sum(self.batches[0][1]) >= keep_ms:
            self.ms -= sum(self.batches.popleft()[1])

    def judge(self, beeps: BeepDetector) -> None:
        """Feed every kept frame to ``beeps`` in order, as if it had been judged when it came; then forget."""
        for frames, frames_ms, levels, end_ms in self.batches:
            tonal = tonal_frames(frames, levels)
            if beeps.run_ms == 0 and not tonal.any():
                continue  # no tone and none running: the detector would not change
            now_ms = end_ms - sum(len(f) for f in frames) / BYTES_PER_MS
            for frame_ms, is_tonal_ in zip(frames_ms, tonal.tolist(), strict=True):
                now_ms += frame_ms
                beeps.feed_tonal(frame_ms, is_tonal_, now_ms)
        self.batches.clear()
        self.ms = 0.0


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
