"""In-band DTMF: the standard keypad tone pairs synthesised as mu-law audio for the outbound media.

Twilio Media Streams accept only ``media``, ``mark`` and ``clear`` from us (no DTMF message), so keys are
sent as sound, exactly as a handset does. Frequencies and timing follow ITU-T Q.23 / Q.24: rows 697, 770,
852, 941 Hz x columns 1209, 1336, 1477, 1633 Hz; a receiver must accept tones >= 40 ms and pauses >= 40 ms,
carriers' IVRs expect 70-100 ms. We send 90 ms tones with 90 ms gaps and the column tone 2 dB above the row
tone (the "forward twist" telephone lines are built for), well clear of mu-law clipping.
"""

from __future__ import annotations

import re

import numpy as np

from callserver.audio import SAMPLE_RATE, encode, silence

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
PAIRS: dict[str, tuple[float, float]] = {
    key: (ROWS[r], COLUMNS[c]) for r, row in enumerate(KEYPAD) for c, key in enumerate(row)
}
TONE_MS = 90
GAP_MS = 90
PAUSE_MS = 500
"""``w`` in a digit string: half a second, as in Twilio's ``<Play digits>``."""
ROW_AMPLITUDE = 6000.0  # about -14.7 dBFS
COLUMN_AMPLITUDE = 7550.0  # +2 dB twist
_RAMP = 40  # 5 ms raised-cosine edges: a hard-keyed tone splatters energy into neighbouring bins

VALID = re.compile(r"^[0-9*#A-Dw]+$")


def normalise(digits: str) -> str:
    """Strip spaces and dashes people write in IDs; raise ValueError for anything not on a keypad."""
    cleaned = re.sub(r"[\s\-().]", "", digits).replace("W", "w")
    cleaned = "".join(ch.upper() if ch in "abcd" else ch for ch in cleaned)
    if not cleaned or not VALID.match(cleaned):
        raise ValueError(f"not keypad digits: {digits!r} (use 0-9, *, #, A-D, w for a pause)")
    return cleaned


def tone(key: str, ms: int = TONE_MS) -> bytes:
    low, high = PAIRS[key]
    n = round(ms * SAMPLE_RATE / 1000)
    t = np.arange(n) / SAMPLE_RATE
    wave = ROW_AMPLITUDE * np.sin(2 * np.pi * low * t) + COLUMN_AMPLITUDE * np.sin(2 * np.pi * high * t)
    ramp = min(_RAMP, n // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        wave[:ramp] *= edge
        wave[-ramp:] *= edge[::-1]
    return encode(wave)


def tones(digits: str, tone_ms: int = TONE_MS, gap_ms: int = GAP_MS) -> bytes:
    """The whole key sequence as mu-law: tone, gap, tone, gap ... (``w`` = 500 ms pause)."""
    out = bytearray()
    for key in normalise(digits):
        if key == "w":
            out += silence(PAUSE_MS)
            continue
        out += tone(key, tone_ms)
        out += silence(gap_ms)
    return bytes(out)
