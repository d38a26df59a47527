"""Turn-taking from STT events: when the callee finished a turn, and when they barged in.

End of turn: Deepgram's ``speech_final`` (endpointing silence) or ``UtteranceEnd`` (the backstop when
noise keeps endpointing from firing). Barge-in: while the agent talks, an interim or final transcript
with two or more words, or one word that is not a backchannel ("uh-huh", "okay"), interrupts it; a lone
backchannel does not, and is dropped from the turn if the agent was speaking when it ended.
``SpeechStarted`` alone never interrupts: a cough or an "mm" would cut the agent off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callserver.stt.base import SpeechStarted, SttEvent, Transcript, UtteranceEnd

BACKCHANNELS = frozenset({
    "uh-huh", "uh huh", "uhhuh", "mm-hmm", "mm hmm", "mhm", "mmhmm", "hmm", "mm", "okay", "ok", "right",
    "yeah", "yep", "yes", "sure", "alright", "aha", "ah", "oh", "i see", "got it", "cool", "uh", "um",
})
_WORD = re.compile(r"[\w'-]+")


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_backchannel(text: str) -> bool:
    """A lone acknowledgement: one word (or a two-word form like "uh huh") from the backchannel list."""
    words = words_of(text)
    if not words:
        return True
    return " ".join(words) in BACKCHANNELS or (len(words) == 1 and words[0] in BACKCHANNELS)


@dataclass(frozen=True, slots=True)
class BargeIn:
    text: str


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    text: str


@dataclass(frozen=True, slots=True)
class Backchannel:
    text: str


Decision = BargeIn | EndOfTurn | Backchannel


@dataclass
class TurnTaker:
    """Pure state machine: feed events with the agent's speaking state, act on the decisions."""

    finals: list[str] = field(default_factory=list)
    interim: str = ""
    barged: bool = False
    """A barge-in was already reported for the utterance in progress."""

    @property
    def pending_text(self) -> str:
        return " ".join([*self.finals, self.interim]).strip()

    def feed(self, event: SttEvent, agent_speaking: bool) -> list[Decision]:
        out: list[Decision] = []
        if isinstance(event, SpeechStarted):
            return out
        if isinstance(event, Transcript):
            if event.is_final:
                if event.text.strip():
                    self.finals.append(event.text.strip())
                self.interim = ""
            else:
                self.interim = event.text.strip()
            if agent_speaking and not self.barged and self._interrupts():
                self.barged = True
                out.append(BargeIn(self.pending_text))
            if event.speech_final:
                out += self._end(agent_speaking)
        elif isinstance(event, UtteranceEnd):
            out += self._end(agent_speaking)
        return out

    def _interrupts(self) -> bool:
        text = self.pending_text
        return bool(text) and not is_backchannel(text)

    def _end(self, agent_speaking: bool) -> list[Decision]:
        text = self.pending_text
        if not text:
            return []
        barged = self.barged
        self.finals, self.interim, self.barged = [], "", False
        if agent_speaking and not barged and is_backchannel(text):
            return [Backchannel(text)]
        return [EndOfTurn(text)]
