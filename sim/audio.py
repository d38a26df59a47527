"""Telephone audio for the emulators: G.711 mu-law, DTMF, hold music, beeps, silence.

Everything is 8 kHz mono mu-law, the format of Twilio Media Streams. Only numpy is used (``audioop`` is
gone from Python 3.13).

References: ITU-T G.711 (mu-law, bias 0x84, clip 32635); ITU-T Q.23 / Q.24 (DTMF frequency pairs,
minimum tone 40 ms, twist limits); the Goertzel algorithm as used by DTMF receivers.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = 160
MULAW_SILENCE = 0xFF
SILENT_FRAME = bytes([MULAW_SILENCE]) * FRAME_BYTES

_BIAS = 0x84
_CLIP = 32635


def _build_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), _CLIP) + _BIAS
    # mag is in [132, 32767]: its highest set bit (7..14) gives the segment (exponent 0..7).
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _build_decode_table() -> np.ndarray:
    b = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (b >> 4) & 0x07
    mantissa = b & 0x0F
    mag = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(b & 0x80, -mag, mag).astype(np.int16)


_ENCODE = _build_encode_table()
_DECODE = _build_decode_table()
_DECODE_F = _DECODE.astype(np.float64)
_SQUARES = _DECODE_F ** 2
"""Squared PCM value per mu-law byte: frame energy in one lookup (the phone checks every frame)."""


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 PCM -> G.711 mu-law bytes."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        samples = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    return _ENCODE[samples.astype(np.int32) + 32768].tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 PCM."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def _samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


def silence(ms: float) -> bytes:
    return bytes([MULAW_SILENCE]) * _samples(ms)


def ms_of(data: bytes) -> float:
    """Duration of mu-law bytes at 8 kHz, in ms."""
    return len(data) * 1000 / SAMPLE_RATE


def _sine(freqs: list[float], n: int, amplitude: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for f in freqs:
        out += np.sin(2 * np.pi * f * t)
    return out * amplitude


ROW_FREQS = (697.0, 770.0, 852.0, 941.0)
COL_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_DIGIT_PAIRS = {
    key: (ROW_FREQS[r], COL_FREQS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}


def dtmf_tones(digits: str, tone_ms: int = 80, gap_ms: int = 80) -> bytes:
    """Standard DTMF tone pairs for ``digits`` (0-9 * # A-D); ``w`` is a 500 ms pause."""
    out = bytearray()
    for ch in digits.upper():
        if ch == "W":
            out += silence(500)
            continue
        if ch not in _DIGIT_PAIRS:
            raise ValueError(f"not a DTMF digit: {ch!r}")
        # -6 dBFS per tone keeps the pair clear of mu-law clipping.
        out += mulaw_encode(_sine(list(_DIGIT_PAIRS[ch]), _samples(tone_ms), 16000))
        out += silence(gap_ms)
    return bytes(out)


_BLOCK = 102  # ~12.75 ms: Goertzel over so few samples still separates adjacent DTMF rows by ~22 dB.
_ALL_FREQS = np.array(ROW_FREQS + COL_FREQS)
_COEFFS = 2 * np.cos(2 * np.pi * _ALL_FREQS / SAMPLE_RATE)
_MIN_POWER = 2.0e5  # per-sample energy floor: about -42 dBFS, below any tone we generate
_MIN_SHARE = 0.7  # the two tones must carry most of the block's energy (speech, noise, chords do not)
_MAX_TWIST = 6.3  # 8 dB between the row and the column tone
_SECOND_RATIO = 0.15  # the runner-up in each group must be ~8 dB weaker
_CONFIRM_BLOCKS = 3  # ~38 ms: report a held tone once it reaches the Q.24 40 ms minimum
_MIN_BLOCKS = 2  # a tone shorter than two blocks is not a digit


# Goertzel's final state equals the DFT at the exact tone frequency, so all blocks are done at once as one
# matrix product instead of a per-sample Python loop.
_BASIS = np.exp(-2j * np.pi * np.outer(_ALL_FREQS, np.arange(_BLOCK)) / SAMPLE_RATE)


# A full-block sine of amplitude A gives |X|^2 = (A*N/2)^2 and block energy A^2*N/2: the basis is scaled by
# sqrt(2/N) so that |X|^2 is on the block energy's scale.
_BASIS_T = np.ascontiguousarray(_BASIS.T) * np.sqrt(2 / _BLOCK)


def _goertzel_powers(blocks: np.ndarray) -> np.ndarray:
    """Power at each of the 8 DTMF frequencies, on the same scale as the block energy."""
    z = blocks @ _BASIS_T
    return z.real ** 2 + z.imag ** 2


def _classify(block: np.ndarray, powers: np.ndarray) -> str | None:
    energy = float(np.dot(block, block))
    if energy / len(block) < _MIN_POWER:
        return None
    rows, cols = powers[:4], powers[4:]
    r, c = int(np.argmax(rows)), int(np.argmax(cols))
    row_p, col_p = rows[r], cols[c]
    if (row_p + col_p) < _MIN_SHARE * energy:
        return None
    if row_p > _MAX_TWIST * col_p or col_p > _MAX_TWIST * row_p:
        return None
    if np.sort(rows)[-2] > _SECOND_RATIO * row_p or np.sort(cols)[-2] > _SECOND_RATIO * col_p:
        return None
    return _KEYPAD[r][c]


# Prefilter for _classify_blocks. A key needs its strongest row and column tone to carry _MIN_SHARE of the
# block's energy, and those two powers are at most the sum of all eight, so a block whose eight powers
# together fall short of that share cannot be a key. That sum is one quadratic form of the block,
# x @ (B B^T) @ x with B the 8 tones' cos and sin columns, and "sum of powers >= share * energy" is
# x @ (B B^T - share I) @ x >= 0: one matrix product and one row-wise dot for every block at once. With the
# share lowered by 1e-6 that form is > 0 (not just >= 0) for any block with energy that passes, by a
# margin of 7e-7 of its energy against rounding errors below 1e-12 of it, so it never rejects a block the
# exact test would pass; an all-zero block (0 > 0) is rejected, as the energy floor rejects it.
_REAL_BASIS = np.concatenate((_BASIS_T.real, _BASIS_T.imag), axis=1)
_SHARE_FORM = _REAL_BASIS @ _REAL_BASIS.T - _MIN_SHARE * (1 - 1e-6) * np.eye(_BLOCK)


def _maybe_keys(blocks: np.ndarray) -> np.ndarray:
    """False for every block that provably cannot classify as a key (speech, noise, music, silence)."""
    return np.einsum("ij,ij->i", blocks @ _SHARE_FORM, blocks) > 0


def _classify_candidates(blocks: np.ndarray, candidates: list[bool]) -> list[str | None]:
    """``_classify`` for the blocks ``_maybe_keys`` let through, None for the rest (which cannot be keys)."""
    if True not in candidates:
        return [None] * len(blocks)
    powers = _goertzel_powers(blocks)
    return [_classify(block, p) if ok else None
            for block, p, ok in zip(blocks, powers, candidates, strict=True)]


def _classify_blocks(blocks: np.ndarray) -> list[str | None]:
    """``_classify`` for every block: the phone runs this on every frame it plays. One cheap test over all
    blocks (``_maybe_keys``) rejects speech, music and noise; only blocks that pass it get the exact
    per-block checks, so the result is the same as calling ``_classify`` on each."""
    # A list: ndarray.any() costs more than the test itself.
    return _classify_candidates(blocks, _maybe_keys(blocks).tolist())


def classify_mulaw_streams(chunks: list[bytes]) -> list[list[str | None]]:
    """``_classify_blocks`` of each stream of mu-law bytes (a whole number of blocks each), all decoded and
    prefiltered in one pass: the phone gathers the blocks of every line ticked in a round, so the fixed
    numpy cost is paid once per round, not once per line. Decoding is per sample, so a stream's rows of
    the joint array are what decoding it alone gives; its exact checks run on those rows alone. A block's
    prefilter verdict may differ from a per-stream pass only by rounding, and either way it admits every
    block that is a key, so the keys are the same."""
    if not chunks:
        return []
    blocks = _DECODE_F.take(np.frombuffer(b"".join(chunks), dtype=np.uint8)).reshape(-1, _BLOCK)
    candidates = _maybe_keys(blocks).tolist()
    out: list[list[str | None]] = []
    start = 0
    for chunk in chunks:
        end = start + len(chunk) // _BLOCK
        out.append(_classify_candidates(blocks[start:end], candidates[start:end]))
        start = end
    return out


_SILENT_PENDING = bytes([MULAW_SILENCE]) * _BLOCK


class DtmfDetector:
    """Streaming DTMF receiver over mu-law input, any chunk size."""

    def __init__(self) -> None:
        self._pending = b""
        """Mu-law bytes short of a whole block, carried to the next chunk."""
        self._pending_zero = True
        """Every pending sample is known to be zero (a flag: asking the array costs ~1-3 us a frame)."""
        self._current: str | None = None
        self._run = 0
        self._reported = False

    def feed(self, data: bytes) -> list[str]:
        """Digits whose tone ended, or was held >= ~40 ms, within ``data``; one report per tone."""
        blocks = self.take_bytes(data)
        return [] if blocks is None else self.feed_keys(classify_mulaw_streams([blocks])[0])

    def take_bytes(self, data: bytes) -> bytes | None:
        """First half of ``feed``: the mu-law bytes of the whole blocks ``data`` completes, to classify
        (``classify_mulaw_streams``) and pass to ``feed_keys`` before the next chunk; None when ``data``
        provably changes nothing."""
        silent = _digital_silence(data)
        if silent and self._current is None and self._pending_zero:
            # Nothing can start or end in pure silence after silence: the same result without the
            # arithmetic (most frames of a call; the phone feeds every frame it plays).
            self._pending = _SILENT_PENDING[:(len(self._pending) + len(data)) % _BLOCK]
            return None
        stream = self._pending + data
        usable = len(stream) - len(stream) % _BLOCK
        self._pending = stream[usable:]
        # What is left over came from this chunk alone when the chunk is at least as long: zero if silent.
        self._pending_zero = not self._pending or (silent and len(self._pending) <= len(data))
        return stream[:usable] if usable else None

    def feed_keys(self, keys: list[str | None]) -> list[str]:
        """Second half of ``feed``: the key (or None) of each block ``take_bytes`` returned, in order."""
        if self._current is None and not any(keys):
            return []  # no tone before nor in these blocks: nothing to report, no state to change
        digits: list[str] = []
        for key in keys:
            found = self._step(key)
            if found:
                digits.append(found)
        return digits

    def _step(self, key: str | None) -> str | None:
        reported: str | None = None
        if key != self._current:
            if self._current is not None and not self._reported and self._run >= _MIN_BLOCKS:
                reported = self._current
            self._current, self._run, self._reported = key, 0, False
        if key is None:
            return reported
        self._run += 1
        if self._run >= _CONFIRM_BLOCKS and not self._reported:
            self._reported = True
            return key
        return reported


# Notes for hold music, kept clear of the DTMF frequencies so a chord never looks like a key press.
_NOTES = [
    f for f in (220.0 * 2 ** (i / 12) for i in range(0, 30))
    if all(abs(f - d) > 45 for d in _ALL_FREQS)
]


def hold_music(ms: float, seed: int = 0) -> bytes:
    """Music-like audio: 3-4 note chords with attack/decay envelopes, one every 300-500 ms."""
    rng = np.random.default_rng(seed)
    total = _samples(ms)
    out = np.zeros(total)
    pos = 0
    while pos < total:
        n = min(int(rng.integers(2400, 4001)), total - pos)
        root = int(rng.integers(0, len(_NOTES) - 8))
        chord = [_NOTES[root + step] for step in (0, 3, 5, 7)[: int(rng.integers(3, 5))]]
        t = np.arange(n)
        envelope = np.minimum(1.0, t / 200) * np.exp(-t / (n * 1.5))
        out[pos:pos + n] = _sine(chord, n, 2500) * envelope
        pos += n
    return mulaw_encode(out)


def beep(ms: int = 400, freq: float = 1000.0) -> bytes:
    """A single-frequency beep, like the one before a voicemail recording."""
    return mulaw_encode(_sine([freq], _samples(ms), 12000))


def _digital_silence(data: bytes) -> bool:
    """Every byte is mu-law zero (0xFF): what lines and emulators send between words; cheap to test."""
    return not data.lstrip(b"\xff")


@functools.lru_cache(maxsize=32)
def _quiet_bytes(n: int, threshold: int) -> bytes:
    """The mu-law bytes whose square alone stays under the ``threshold`` RMS budget of ``n`` samples."""
    budget = threshold * threshold * n
    return bytes(b for b in range(256) if _SQUARES[b] < budget)


def is_silence(data: bytes, threshold: int = 200) -> bool:
    """True when the decoded PCM's RMS is under ``threshold``."""
    if _digital_silence(data):
        return True
    # One sample whose square reaches threshold^2 * n puts the mean square over threshold^2 by itself (the
    # squares are non-negative, and their sum is exact: integers under 2^53), so a frame holding such a
    # byte is not silence. lstrip finds it in C, stopping at the first one: speech frames are decided
    # there, without the sum.
    if data.lstrip(_quiet_bytes(len(data), threshold)):
        return False
    # sum / n is what .mean() computes, without its Python-level wrapper (the phone asks every frame).
    return float(_SQUARES.take(np.frombuffer(data, dtype=np.uint8)).sum()) / len(data) < threshold * threshold
