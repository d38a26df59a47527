"""Cut the LLM's token stream into speakable phrases, as early as a natural boundary allows.

The first phrase goes out at the first clause boundary (, ; : — or a sentence end) so the callee hears
the agent sooner; later phrases are whole sentences (or clauses once a phrase grows long), which sound
more natural because TTS prosody works per request. A boundary only counts once the character after the
punctuation has arrived and is whitespace, so "3.5", "1,000", "A.B.C" and "example.com" are never cut;
known abbreviations ("Dr.", "e.g.") and single initials ("J.") are not sentence ends.
"""

from __future__ import annotations

import re

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


class PhraseSplitter:
    """Feed tokens with ``push``; it returns the phrases completed so far. ``flush`` returns the rest."""

    def __init__(self, long_phrase_chars: int = LONG_PHRASE_CHARS) -> None:
        self._buf = ""
        self._scan_from = 0
        self._first = True
        self._long = long_phrase_chars

    def push(self, token: str) -> list[str]:
        self._buf += token
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            phrase, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            self._scan_from = 0
            if phrase:
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
            if ch in _CLAUSE and (self._first or i >= self._long) and buf[:i].strip():
                return i + 1
        self._scan_from = max(0, len(buf) - 1)
        return None

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


def split_text(text: str) -> list[str]:
    """All phrases of a complete text (used for lines said verbatim)."""
    splitter = PhraseSplitter()
    phrases = splitter.push(text)
    rest = splitter.flush()
    return [*phrases, rest] if rest else phrases
