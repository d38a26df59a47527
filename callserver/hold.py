"""On hold: what is a recording, what is a person, and how long we have waited.

Hold queues loop music and the same few announcements ("Your call is important to us...") for as long
as it takes. Asking the LLM about every loop costs money and risks the agent answering a recording, so
the decision is deterministic: an utterance heard before (same words, remembered for the whole call), a
lone word (music picked up as speech), or one in the stock language of queues, menus and promotions is a
recording; anything else is a person ("this is Dana", "thanks for waiting, so about your claim...") and
ends the hold at once. Ignoring a person is the costly mistake (they hang up), so when in doubt it is a
person: at worst the agent answers one new recording, which then repeats and is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callserver.ivr import is_menu

HOLD_PHRASES = re.compile("|".join([
    r"\bplease\s+(?:continue\s+to\s+)?hold\b",
    r"\bplease\s+stay\s+on\s+the\s+line\b",
    r"\byour\s+call\s+is\s+(?:very\s+)?important\b",
    r"\bthank\s+you\s+for\s+(?:holding|waiting|your\s+patience)\b",
    r"\ball\s+(?:of\s+)?our\s+\w+\s+are\s+(?:currently\s+)?(?:busy|assisting|helping)\b",
    r"\b(?:calls?|callers?)\s+will\s+be\s+(?:answered|taken)\s+in\s+the\s+order\b",
    r"\b(?:estimated|expected|current)\s+(?:wait|hold)\s+time\b",
    r"\bnext\s+available\s+(?:agent|representative|associate)\b",
    r"\bwill\s+be\s+with\s+you\s+(?:shortly|momentarily|soon)\b",
    r"\bplaced\s+(?:you\s+)?on\s+hold\b",
]), re.IGNORECASE)
HUMAN = re.compile("|".join([
    r"\bthis\s+is\s+[A-Z][a-z]+",
    r"\bmy\s+name\s+is\b",
    r"\bhow\s+(?:can|may)\s+I\s+(?:help|assist)\b",
    r"\bwhat\s+can\s+I\s+do\s+for\s+you\b",
    r"\bI(?:'m|'ll|'ve|\s+am|\s+can|\s+have)\b",
    r"\b(?:can|may|could)\s+I\s+(?:have|get|ask)\b",
    r"\bwho\s+am\s+I\s+speaking\b",
    r"\bare\s+you\s+(?:still\s+)?there\b",
    r"\bspeaking\b[.!?]?$",
]), re.IGNORECASE)
RECORDED = re.compile("|".join([
    r"\bdid\s+you\s+know\b",
    r"\bvisit\s+(?:us|our)\b",
    r"\bwww\b|\bdot\s+com\b|\.com\b|\bwebsite\b|\bonline\s+at\b",
    r"\bmay\s+be\s+(?:monitored|recorded)\b",
    r"\b(?:business|office)\s+hours\s+are\b",
]), re.IGNORECASE)
GREETING = re.compile(r"^\W*(?:hello|hi|hey|yes|yeah)\b", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_hold_phrase(text: str) -> bool:
    return bool(HOLD_PHRASES.search(text))


def sounds_human(text: str) -> bool:
    if HUMAN.search(text):
        return True
    # "Hello?" alone is a person; a recording's "Hello, and thank you for calling ..." is not.
    return bool(GREETING.search(text)) and len(words(text)) <= 3


def similar(a: list[str], b: list[str]) -> bool:
    """Same announcement: at least 80% of the words in common (STT wobbles on a word or two)."""
    sa, sb = set(a), set(b)
    return bool(sa and sb) and len(sa & sb) / len(sa | sb) >= 0.8


@dataclass
class Hold:
    """One stretch on hold, timed on the call's media clock (ms of audio received)."""

    since_ms: float
    since_wall: str
    """HH:MM (UTC ISO time) the hold started, for the chat card."""
    reason: str = ""
    announcements: list[list[str]] = field(default_factory=list)
    recordings_heard: int = 0

    def classify(self, text: str) -> str:
        """'recording' (stay silent) or 'person' (resume now)."""
        said = words(text)
        if any(similar(said, seen) for seen in self.announcements):
            self.recordings_heard += 1
            return "recording"
        if sounds_human(text):
            return "person"
        if len(said) < 2 or is_hold_phrase(text) or is_menu(text) or RECORDED.search(text):
            if len(said) >= 2:
                self.announcements.append(said)
            self.recordings_heard += 1
            return "recording"
        return "person"


def held_note(minutes: float, recordings: int) -> str:
    return (f"[You were on hold for {minutes:.1f} min ({recordings} recorded announcements skipped). A "
            "person has just picked up and spoken: reply to them now, briefly restating why you call.]")


HOLD_NOTE = ("[You are on hold now. Stay silent; you will be told when a person picks up. Do not reply to "
             "music or recorded announcements.]")
