"""Cut the LLM's token stream into speakable phrases, as early as a natural boundary allows.

The first phrase goes out at the first clause boundary (, ; : — or a sentence end) so the callee hears
the agent sooner; later phrases are whole sentences (or clauses once a phrase grows long), which sound
more natural because TTS prosody works per request. A boundary only counts once the character after the
punctuation has arrived and is whitespace, so "3.5", "1,000", "A.B.C" and "example.com" are never cut;
known abbreviations ("Dr.", "e.g.") and single initials ("J.") are not sentence ends.

Waiting for that next character costs a token's time (tens of ms with a real LLM) before the first phrase
can go to TTS, so in the first phrase a token that *ends* with punctuation cuts at once when the mark is
unambiguous: "?" or "!"; a comma, ";" or ":" after a letter (not "1," of "1,000", "10:" of "10:30", nor
"https:"); a period after a word of two or more letters that is no abbreviation ("Dr.", "etc.") and has
no inner period ("e.g.", "a.m."). Later phrases keep waiting for the next character: they queue behind
audio still playing, so certainty ("example.com", "Wait...") costs nothing there. A phrase with nothing
to say (the "!" of "?!" after an early cut) is dropped.

A later phrase is cut like the first one while ``hurry()`` says so: the speaker reports that the callee is
about to run out of audio (callserver.speech), and a hole in the speech is worse than a clause-sized phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CLAUSE = ",;:—–"
_SENTENCE = ".?!…"
ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "mx", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "no",
    "inc", "ltd", "co", "corp", "dept", "apt", "ave", "blvd", "rd", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "est", "min", "max", "tel", "ext",
})
LONG_PHRASE_CHARS = 80
"""Past this length a later phrase may also end at a clause boundary."""
_WORD_BEFORE = re.compile(r"(\S+)$")
_EAGER_CLAUSE = ",;:"
_EAGER_MARKS = "?!." + _EAGER_CLAUSE
_URL_SCHEMES = frozenset({"http", "https", "ftp", "mailto", "sip", "tel"})


class PhraseSplitter:
    """Feed tokens with ``push``; it returns the phrases completed so far. ``flush`` returns the rest."""

    def __init__(self, long_phrase_chars: int = LONG_PHRASE_CHARS,
                 hurry: Callable[[], bool] | None = None) -> None:
        self._buf = ""
        self._scan_from = 0
        self._first = True
        self._long = long_phrase_chars
        self._hurry = hurry

    def _eager(self) -> bool:
        """Cut at the first clause boundary: the first phrase, or a later one when audio runs short."""
        return self._first or (self._hurry is not None and self._hurry())

    def push(self, token: str) -> list[str]:
        self._buf += token
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            phrase, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            self._scan_from = 0
            if _speakable(phrase):
                out.append(phrase)
                self._first = False
        return out

    def flush(self) -> str | None:
        phrase, self._buf, self._scan_from = self._buf.strip(), "", 0
        self._first = not phrase and self._first
        return phrase or None

    def _find_cut(self) -> int | None:
        buf = self._buf
        # Stop one short of the end: the character after a mark decides whether it is a boundary.
        for i in range(self._scan_from, len(buf) - 1):
            ch = buf[i]
            if not buf[i + 1].isspace():
                continue
            if ch in _SENTENCE and self._sentence_end(buf, i):
                return i + 1
            if ch in _CLAUSE and (i >= self._long or self._eager()) and buf[:i].strip():
                return i + 1
        self._scan_from = max(0, len(buf) - 1)
        return len(buf) if buf and self._cut_at_end(buf) else None

    def _cut_at_end(self, buf: str) -> bool:
        """The token just pushed ends with a mark that is a boundary whatever comes next."""
        i = len(buf) - 1
        ch, before = buf[i], buf[i - 1] if i else ""
        if not before or before.isspace() or ch not in _EAGER_MARKS or not self._eager():
            return False
        if ch in "?!":
            return True
        if ch in _EAGER_CLAUSE:
            return before.isalpha() and (ch != ":" or _word_before(buf, i).lower() not in _URL_SCHEMES)
        if ch == "." and before.isalpha():
            word = _word_before(buf, i)
            return len(word) > 1 and word.isalpha() and word.lower() not in ABBREVIATIONS
        return False

    @staticmethod
    def _sentence_end(buf: str, i: int) -> bool:
        if buf[i] != ".":
            return True
        match = _WORD_BEFORE.search(buf[:i])
        if match is None:
            return bool(buf[:i].strip())
        word = match.group(1).lstrip("(\"'“‘")
        if word.lower() in ABBREVIATIONS:
            return False
        return not (len(word) == 1 and word.isalpha() and word.isupper())  # an initial, "J. Smith"


def _word_before(buf: str, i: int) -> str:
    match = _WORD_BEFORE.search(buf, 0, i)
    return match.group(1).lstrip("(\"'“‘") if match else ""


def _speakable(phrase: str) -> bool:
    return any(ch.isalnum() for ch in phrase)


def split_text(text: str) -> list[str]:
    """All phrases of a complete text (used for lines said verbatim)."""
    splitter = PhraseSplitter()
    phrases = splitter.push(text)
    rest = splitter.flush()
    return [*phrases, rest] if rest else phrases
