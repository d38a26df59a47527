"""Recognising an automated phone menu (IVR) from what the callee side says, and listening to it properly.

A menu reads its options in one long run with short pauses ("For eligibility, press 1. For prior
authorisation, press 2."). Deepgram's ``speech_final`` fires at the first endpointing pause, so a normal
turn-taker would answer "press 1" before hearing option 2, talking over the recording. In IVR mode the
end of a turn is ``UtteranceEnd`` only (a gap of utterance_end_ms after the last word), and the callee
side never counts as barging in: a recording does not listen to us. The mode starts on menu language
(interim results count, so it is on before the first ``speech_final``) and ends when a person talks.
"""

from __future__ import annotations

import dataclasses
import re

from callserver.stt.base import SttEvent, Transcript

_KEY = r"(?:\d|one|two|three|four|five|six|seven|eight|nine|zero|star|pound|hash)"
MENU = re.compile("|".join([
    rf"\bpress(?:ing)?\s+{_KEY}\b",
    rf"\bdial\s+{_KEY}\b",
    r"\bpara\s+espa[nñ]ol\b",
    r"\bsay\s+or\s+(?:enter|press|type)\b",
    r"\b(?:enter|key\s+in|type)\s+(?:your|the)\b[^.?!]*\b(?:followed\s+by|then)\b",
    r"\bfollowed\s+by\s+the\s+(?:pound|hash)\b",
    r"\b(?:pound|hash)\s+(?:key|sign)\b",
    r"\bmain\s+menu\b",
    r"\bmenu\s+options\b",
    r"\bif\s+you\s+know\s+your\s+party'?s\s+extension\b",
    r"\bplease\s+(?:say|enter)\s+(?:your|the)\b",
]), re.IGNORECASE)


def is_menu(text: str) -> bool:
    return bool(MENU.search(text))


@dataclasses.dataclass
class IvrGate:
    """Whether the other side is a recording we must let finish; filters STT events accordingly."""

    active: bool = False
    menus_heard: int = 0
    _seen_text: str = ""

    def filter(self, event: SttEvent, pending: str) -> SttEvent:
        """The event as turn-taking should see it: without ``speech_final`` while a menu is talking."""
        if isinstance(event, Transcript):
            if not self.active and is_menu(f"{pending} {event.text}"):
                self.active = True
            if self.active and event.speech_final:
                return dataclasses.replace(event, speech_final=False)
        return event

    def on_turn(self, text: str) -> bool:
        """A finished turn; True when it was menu language (first time: the agent gets a hint)."""
        if is_menu(text):
            self.active = True
            self.menus_heard += 1
            return True
        return False

    def person_spoke(self) -> None:
        self.active = False


MENU_NOTE = ("[An automated phone menu is speaking, not a person. Answer it with the press_digits tool "
             "(or say just the option if it asks you to say it); do not talk to it otherwise.]")
