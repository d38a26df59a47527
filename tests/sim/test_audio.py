"""sim.audio: mu-law, DTMF generation and detection, hold music, beeps, silence."""

from __future__ import annotations

import numpy as np
import pytest

from sim import audio
from sim.audio import DtmfDetector, dtmf_tones, mulaw_decode, mulaw_encode

ALL_DIGITS = "0123456789*#ABCD"


def detect(data: bytes, chunk: int) -> str:
    detector = DtmfDetector()
    found: list[str] = []
    for i in range(0, len(data), chunk):
        found += detector.feed(data[i:i + chunk])
    return "".join(found)


def test_mulaw_reference_values() -> None:
    # Known G.711 code words: zero -> 0xFF, full-scale positive -> 0x80, full-scale negative -> 0x00.
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x80, 0x00])
    assert mulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]


def test_mulaw_round_trip_error_is_within_segment_step() -> None:
    pcm = np.arange(-32000, 32000, 7, dtype=np.int16)
    back = mulaw_decode(mulaw_encode(pcm)).astype(np.int32)
    # mu-law quantisation error grows with magnitude: at most half a step (1/32 of the value + bias).
    assert np.all(np.abs(back - pcm) <= np.abs(pcm.astype(np.int32)) / 16 + 8)
    # Every code word decodes to a value that re-encodes to itself, except the duplicate zero 0x7F.
    codes = bytes(b for b in range(256) if b != 0x7F)
    assert mulaw_encode(mulaw_decode(codes)) == codes


def test_silence_and_duration() -> None:
    assert audio.silence(20) == bytes([audio.MULAW_SILENCE]) * audio.FRAME_BYTES
    assert audio.ms_of(audio.silence(1234)) == pytest.approx(1234, abs=0.2)
    assert audio.is_silence(audio.silence(100))
    assert audio.is_silence(b"")
    assert not audio.is_silence(audio.beep(100))
    assert not audio.is_silence(audio.hold_music(500))


@pytest.mark.parametrize("chunk", [160, 7, 1, 5000])
@pytest.mark.parametrize("tone_ms", [70, 80, 100])
def test_detects_all_digits_any_chunking(chunk: int, tone_ms: int) -> None:
    data = dtmf_tones(ALL_DIGITS, tone_ms=tone_ms, gap_ms=60)
    assert detect(data, chunk) == ALL_DIGITS


def test_repeated_digits_and_pause() -> None:
    data = dtmf_tones("11w22", tone_ms=80, gap_ms=50)
    assert audio.ms_of(data) == pytest.approx(4 * 130 + 500, abs=1)
    assert detect(data, 160) == "1122"


def test_long_tone_reported_once_while_held() -> None:
    detector = DtmfDetector()
    held = dtmf_tones("5", tone_ms=1000, gap_ms=0)
    # Reported after ~40 ms of the tone, not again while it continues nor when it ends.
    assert detector.feed(held[:400]) == ["5"]
    assert detector.feed(held[400:]) == []
    assert detector.feed(audio.silence(200)) == []


def test_no_digits_in_music_beeps_silence_noise() -> None:
    rng = np.random.default_rng(1)
    noise = mulaw_encode(rng.normal(0, 3000, 16000))
    chords = b"".join(audio.hold_music(3000, seed=s) for s in range(5))
    beeps = audio.beep() + audio.beep(300, 440.0) + audio.beep(500, 1400.0)
    for data in (chords, beeps, audio.silence(2000), noise):
        assert detect(data, 160) == ""


def test_digits_found_between_music() -> None:
    data = audio.hold_music(700) + dtmf_tones("42#") + audio.hold_music(700, seed=3)
    assert detect(data, 160) == "42#"


def test_hold_music_is_deterministic_and_sized() -> None:
    assert audio.hold_music(1000, seed=2) == audio.hold_music(1000, seed=2)
    assert audio.hold_music(1000, seed=2) != audio.hold_music(1000, seed=3)
    assert len(audio.hold_music(1000)) == 8000


def test_unknown_digit_rejected() -> None:
    with pytest.raises(ValueError):
        dtmf_tones("1x")
