"""Speech without a speech model: text carried in-band in mu-law audio of natural length.

Emulated TTS turns each word into a segment of voice-like filler whose length is the word's natural
speaking time, with a small framed packet at its start naming the word. Emulated STT, and the callee side
of the phone emulator, decode the audio alone: a word counts as heard only when its whole duration has
been fed, so "what was heard" is exactly what was played (e.g. only a prefix after a Twilio ``clear``).

Packet: SYNC (4 bytes) | version (1) | word duration ms (uint16 BE) | utf-8 length (uint16 BE) | word |
CRC-16/CCITT (over version..word). The filler never contains SYNC's first byte, so a sync found in a word's
audio is always a packet start; anything else (noise, music, DTMF) that happens to contain SYNC fails the
CRC.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

from sim.audio import MULAW_SILENCE, SAMPLE_RATE, mulaw_encode

SYNC = b"\xa5\x5a\xc3\x96"
VERSION = 1
_HEADER = struct.Struct(">BHH")
_MAX_WORD_BYTES = 1024
_BYTES_PER_MS = SAMPLE_RATE // 1000

MS_PER_CHAR = 55
MS_PER_DIGIT = 200  # digits are read out one by one ("five five five")
MIN_WORD_MS = 150
_PAUSE_AFTER = {",": 150, ";": 150, ":": 150, ".": 300, "?": 300, "!": 300}
_MAX_CHARS_PER_WORD = 200


def _build_filler() -> bytes:
    # Noise with a ~4 Hz syllable envelope at moderate level (RMS ~ -24 dBFS): loud enough that every
    # 20 ms frame reads as voice to an energy VAD, and broadband so it never looks like a DTMF pair.
    rng = np.random.default_rng(0x5EED)
    n = 4 * SAMPLE_RATE
    envelope = 0.75 + 0.25 * np.sin(2 * np.pi * 4.0 * np.arange(n) / SAMPLE_RATE)
    raw = bytearray(mulaw_encode(rng.normal(0, 2200, n) * envelope))
    forbidden = {MULAW_SILENCE, 0x7F, SYNC[0]}
    for i, b in enumerate(raw):
        if b in forbidden:
            raw[i] = b ^ 0x01
    return bytes(raw)


_FILLER = _build_filler()
_FILLER_TWICE = _FILLER * 2  # any window of up to len(_FILLER) bytes is one slice of this


def _crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def split_words(text: str) -> list[str]:
    """The punctuated words of ``text`` as they will be spoken (over-long tokens are cut up)."""
    words: list[str] = []
    for token in text.split():
        words += [token[i:i + _MAX_CHARS_PER_WORD] for i in range(0, len(token), _MAX_CHARS_PER_WORD)]
    return words


def word_ms(word: str, rate: float = 1.0) -> int:
    """Natural speaking time of one word, in ms (``rate`` > 1 speaks faster)."""
    digits = sum(ch.isdigit() for ch in word)
    letters = sum(ch.isalnum() for ch in word) - digits
    return max(1, round(max(MIN_WORD_MS, MS_PER_CHAR * letters + MS_PER_DIGIT * digits) / rate))


def pause_ms(word: str, rate: float = 1.0) -> int:
    """Silence after a word: longer after punctuation, 60-90 ms otherwise (deterministic per word)."""
    base = _PAUSE_AFTER.get(word[-1:], 60 + _crc(word.encode()) % 31)
    return max(1, round(base / rate))


def _packet(word: str, duration_ms: int) -> bytes:
    payload = word.encode()[:_MAX_WORD_BYTES]
    body = _HEADER.pack(VERSION, min(duration_ms, 0xFFFF), len(payload)) + payload
    return SYNC + body + struct.pack(">H", _crc(body))


def _filler(n: int, seed: int) -> bytes:
    start = seed % len(_FILLER)
    if n <= len(_FILLER):  # every word (4 s of filler): no 32-64 KB repetition built per word
        return _FILLER_TWICE[start:start + n]
    reps = (start + n) // len(_FILLER) + 1
    return (_FILLER * reps)[start:start + n]


def _seed(word: str) -> int:
    return _crc(word.encode()) * 7919


def _word_audio(word: str, rate: float) -> bytes:
    duration = word_ms(word, rate)
    packet = _packet(word, duration)
    total = max(duration * _BYTES_PER_MS, len(packet))
    return packet + _filler(total - len(packet), _seed(word))


def encode_words(text: str, rate: float = 1.0) -> list[tuple[str, bytes]]:
    """Per word: (punctuated word, its audio including the silence that follows it)."""
    return [
        (word, _word_audio(word, rate) + bytes([MULAW_SILENCE]) * (pause_ms(word, rate) * _BYTES_PER_MS))
        for word in split_words(text)
    ]


def encode_speech(text: str, rate: float = 1.0) -> bytes:
    """The whole utterance: starts with the first word, ends with the last word (no trailing silence)."""
    words = split_words(text)
    if not words:
        return b""
    parts = [audio for _, audio in encode_words(" ".join(words[:-1]), rate)]
    return b"".join(parts) + _word_audio(words[-1], rate)


@dataclass
class HeardWord:
    word: str
    start_ms: float
    end_ms: float
    """Times are relative to the first byte fed to the decoder."""


@dataclass
class _Word:
    word: str
    start: int  # absolute byte offsets
    end: int
    checked: int  # filler verified up to here
    expected: bytes  # the filler the word's audio must carry after its packet
    matched: int = 0


# Share of a word's filler that must arrive intact. Playback cut by a ``clear`` and followed by silence or
# other audio fails this, so the word is lost; the tolerance is for a few corrupted bytes only.
_MIN_MATCH = 0.8


class SpeechDecoder:
    """Recovers the words of ``encode_speech`` audio from a mu-law stream, any chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # absolute offset of _buf[0]
        self._total = 0
        self._current: _Word | None = None
        self._last_end: int | None = None

    @property
    def position_ms(self) -> float:
        return self._total / _BYTES_PER_MS

    @property
    def in_speech(self) -> bool:
        return self._current is not None

    @property
    def speech_started_ms(self) -> float | None:
        return None if self._current is None else self._current.start / _BYTES_PER_MS

    @property
    def last_word_end_ms(self) -> float | None:
        return None if self._last_end is None else self._last_end / _BYTES_PER_MS

    def feed(self, data: bytes) -> list[HeardWord]:
        """Words whose whole duration was completed by ``data``."""
        self._buf += data
        self._total += len(data)
        heard: list[HeardWord] = []
        pos = 0
        waiting_at: int | None = None  # absolute offset of a packet still arriving
        while True:
            idx = self._buf.find(SYNC, pos)
            if idx < 0:
                keep_from = max(pos, len(self._buf) - len(SYNC) + 1)
                break
            at = self._base + idx
            self._verify(at)
            if self._current is not None and self._current.end <= at:
                heard += self._finish()
            parsed = self._parse(idx)
            if parsed is None:
                keep_from, waiting_at = idx, at
                break
            if parsed is False:
                pos = idx + 1
                continue
            word, duration_ms, length = parsed
            # A new word starting before the current one ended means playback was cut: that word is lost.
            end = at + max(duration_ms * _BYTES_PER_MS, length)
            self._current = _Word(word, at, end, at + length, _filler(end - at - length, _seed(word)))
            pos = idx + length
        self._verify(self._total)
        cur = self._current
        if cur is not None and cur.end <= self._total and (waiting_at is None or waiting_at >= cur.end):
            heard += self._finish()
        del self._buf[:keep_from]
        self._base += keep_from
        return heard

    def _verify(self, upto: int) -> None:
        """Compare the current word's audio received before ``upto`` with its expected filler."""
        cur = self._current
        if cur is None:
            return
        stop = min(upto, cur.end, self._total)
        if stop <= cur.checked:
            return
        content_start = cur.end - len(cur.expected)
        got = self._buf[cur.checked - self._base:stop - self._base]
        want = cur.expected[cur.checked - content_start:stop - content_start]
        if got == want:  # intact audio (nearly every frame): every byte matches, no array needed
            cur.matched += len(want)
        else:
            same = np.frombuffer(got, np.uint8) == np.frombuffer(want, np.uint8)
            cur.matched += int(np.count_nonzero(same))
        cur.checked = stop
        if (stop - content_start) - cur.matched > (1 - _MIN_MATCH) * len(cur.expected):
            self._current = None  # too much of it is not this word: it was cut off

    def _finish(self) -> list[HeardWord]:
        word, self._current = self._current, None
        if word is None or word.matched < _MIN_MATCH * len(word.expected):
            return []
        self._last_end = word.end
        return [HeardWord(word.word, word.start / _BYTES_PER_MS, word.end / _BYTES_PER_MS)]

    def _parse(self, idx: int) -> tuple[str, int, int] | bool | None:
        """(word, duration ms, packet length), False if not a packet, None if not all of it arrived."""
        start = idx + len(SYNC)
        if len(self._buf) < start + _HEADER.size:
            return None
        version, duration_ms, size = _HEADER.unpack_from(self._buf, start)
        if version != VERSION or size > _MAX_WORD_BYTES or duration_ms == 0:
            return False
        end = start + _HEADER.size + size
        if len(self._buf) < end + 2:
            return None
        (crc,) = struct.unpack_from(">H", self._buf, end)
        if crc != _crc(bytes(self._buf[start:end])):
            return False
        try:
            word = self._buf[start + _HEADER.size:end].decode()
        except UnicodeDecodeError:
            return False
        return word, duration_ms, end + 2 - idx
