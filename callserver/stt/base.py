"""What an STT stream emits, provider-neutral (the shape of livekit-agents' SpeechEvent)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    is_final: bool
    """This segment's text will not change any more."""
    speech_final: bool = False
    """The speaker paused long enough (endpointing) to end the utterance."""
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    timestamp_s: float = 0.0


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    last_word_end_s: float = 0.0


SttEvent = Transcript | SpeechStarted | UtteranceEnd


class SttStream(Protocol):
    """Push audio in (never blocks), read events out; ``run`` owns the connection until ``close``."""

    def push(self, audio: bytes) -> None: ...

    async def run(self) -> None: ...

    def events(self) -> AsyncIterator[SttEvent]: ...

    def close(self) -> None: ...
