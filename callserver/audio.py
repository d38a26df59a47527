"""G.711 mu-law for the call server's own audio work (DTMF tones, frame energy, beep detection), numpy only.

``audioop`` is gone from Python 3.13, so the codec is two lookup tables (ITU-T G.711: bias 0x84, clip 32635).
Every function here is a handful of vectorised numpy operations on at most a few hundred samples: cheap
enough for the event loop. At that size numpy's per-call overhead, not the samples, is the cost, so the
per-frame checks of a live call (``levels``, ``tone_shares``) take several frames in one call.
sim/audio.py has its own copy of the same tables on purpose: the emulators stand for the outside world
and import nothing of the product, and the reverse.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

SAMPLE_RATE = 8000
BYTES_PER_MS = SAMPLE_RATE // 1000  # mu-law: one byte per sample
MULAW_SILENCE = 0xFF

_BIAS = 0x84
_CLIP = 32635


def _encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), _CLIP) + _BIAS
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7  # segment of the highest set bit (7..14)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _decode_table() -> np.ndarray:
    b = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (b >> 4) & 0x07
    mantissa = b & 0x0F
    mag = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(b & 0x80, -mag, mag).astype(np.int16)


_ENCODE = _encode_table()
_DECODE = _decode_table()
_SQUARES = _DECODE.astype(np.float64) ** 2
"""Squared sample value per mu-law byte: frame energy in one table lookup (it runs on every frame)."""
_SAMPLES = _DECODE.astype(np.float64)
"""Sample value per mu-law byte as float64, what the spectra need (decoded and converted in one lookup)."""


def encode(pcm: np.ndarray) -> bytes:
    """PCM samples (any numeric dtype, int16 range) -> mu-law bytes."""
    samples = np.clip(np.round(np.asarray(pcm, dtype=np.float64)), -32768, 32767).astype(np.int32)
    return _ENCODE[samples + 32768].tobytes()


def decode(mulaw: bytes) -> np.ndarray:
    """mu-law bytes -> int16 PCM."""
    return _DECODE[np.frombuffer(mulaw, dtype=np.uint8)]


def silence(ms: float) -> bytes:
    return bytes([MULAW_SILENCE]) * round(ms * BYTES_PER_MS)


def rms(mulaw: bytes) -> float:
    """Root mean square of the decoded frame (0 for an empty one); full scale is 32767."""
    if not mulaw:
        return 0.0
    if mulaw is _last_rms[0]:
        return _last_rms[1]  # the silence meter and the beep detector both ask for every inbound frame
    value = math.sqrt(float(_SQUARES[np.frombuffer(mulaw, dtype=np.uint8)].sum()) / len(mulaw))
    _last_rms[:] = [mulaw, value]
    return value


_last_rms: list = [None, 0.0]


@cache
def _spectrum_setup(n: int, low_hz: float, high_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window, bin frequencies and voice-band mask for an n-sample frame (frames are nearly always 160)."""
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    return np.hanning(n), freqs, (freqs >= low_hz) & (freqs <= high_hz)


def tone_share(mulaw: bytes, low_hz: float = 300.0, high_hz: float = 3400.0) -> tuple[float, float]:
    """(peak frequency, share of the frame's energy within +-60 Hz of it) over the voice band.

    A beep is one steady sine: nearly all energy sits in one narrow peak. Speech and music spread it.
    """
    pcm = decode(mulaw).astype(np.float64)
    if len(pcm) < 64:
        return 0.0, 0.0
    window, freqs, band = _spectrum_setup(len(pcm), low_hz, high_hz)
    spectrum = np.abs(np.fft.rfft(pcm * window)) ** 2
    total = float(spectrum.sum())
    if total <= 0 or not band.any():
        return 0.0, 0.0
    peak = float(freqs[band][np.argmax(spectrum[band])])
    near = np.abs(freqs - peak) <= 60
    return peak, float(spectrum[near].sum()) / total


def levels(frames: list[bytes]) -> np.ndarray:
    """``rms`` of each frame, in one vectorised pass when the frames are the same size (Twilio: 160)."""
    size = len(frames[0]) if frames else 0
    if size and all(len(f) == size for f in frames):
        block = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), size)
        return np.sqrt(_SQUARES.take(block).sum(axis=1) / size)
    return np.array([rms(f) for f in frames], dtype=np.float64)


def tone_shares(frames: list[bytes], low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """``tone_share(frame)[1]`` of each frame, with one FFT over all of them when they are the same size."""
    size = len(frames[0]) if frames else 0
    if size < 64 or any(len(f) != size for f in frames):
        return np.array([tone_share(f, low_hz, high_hz)[1] for f in frames], dtype=np.float64)
    window, freqs, band = _spectrum_setup(size, low_hz, high_hz)
    if not band.any():
        return np.zeros(len(frames))
    pcm = _SAMPLES.take(np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), size))
    spectrum = np.abs(np.fft.rfft(pcm * window, axis=1)) ** 2
    total = spectrum.sum(axis=1)
    peaks = freqs[band][np.argmax(spectrum[:, band], axis=1)]
    near = np.abs(freqs[None, :] - peaks[:, None]) <= 60
    shares = (spectrum * near).sum(axis=1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, shares, 0.0)
