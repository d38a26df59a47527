"""sim.audio: mu-law, DTMF generation and detection, hold music, beeps, silence."""

from __future__ import annotations

from collections.abc import Callable

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


def _blocks_of(data: bytes, offset: int = 0) -> np.ndarray:
    samples = mulaw_decode(data[offset:]).astype(np.float64)
    usable = len(samples) - len(samples) % audio._BLOCK
    return samples[:usable].reshape(-1, audio._BLOCK)


def _pair_share(block: np.ndarray) -> float:
    powers = audio._goertzel_powers(block[None])[0]
    return float((powers[:4].max() + powers[4:].max()) / np.dot(block, block))


def _all_tones_share(block: np.ndarray) -> float:
    return float(audio._goertzel_powers(block[None])[0].sum() / np.dot(block, block))


def _share_edge_blocks(share: Callable[[np.ndarray], float]) -> np.ndarray:
    """Tone pairs in noise scaled so that ``share`` is within ~1% of the 70% limit, twist around its 8 dB
    limit, energy around its floor: where a too-strict prefilter would show."""
    rng = np.random.default_rng(7)
    t = np.arange(audio._BLOCK) / audio.SAMPLE_RATE
    out = []
    for row in audio.ROW_FREQS:
        for col in audio.COL_FREQS:
            for twist_db in (0.0, 7.9, 8.1):
                for level in (200.0, 1000.0, 8000.0):
                    phase = rng.uniform(0, 2 * np.pi, 2)
                    tone = level * (np.sin(2 * np.pi * row * t + phase[0])
                                    + 10 ** (-twist_db / 20) * np.sin(2 * np.pi * col * t + phase[1]))
                    noise = level * rng.normal(0, 1, len(t))
                    low, high = 0.0, 3.0  # noise scale: the share falls as it grows; bisect to 70%
                    for _ in range(30):
                        mid = (low + high) / 2
                        above = share(tone + mid * noise) > audio._MIN_SHARE
                        low, high = (mid, high) if above else (low, mid)
                    out += [np.round(tone + low * k * noise) for k in np.linspace(0.99, 1.01, 41)]
    return np.array(out)


def test_classify_blocks_equals_block_by_block_classify() -> None:
    from sim.codec import encode_speech

    rng = np.random.default_rng(3)
    speech = encode_speech("Thanks for calling, your table for 4 is booked at 7:30 tonight. " * 3)
    sources = [
        _blocks_of(dtmf_tones(ALL_DIGITS, tone_ms=70, gap_ms=40), offset)
        for offset in (0, 13, 51)
    ] + [
        _blocks_of(speech, 0), _blocks_of(speech, 77),
        _blocks_of(b"".join(audio.hold_music(2000, seed=s) for s in range(3))),
        _blocks_of(audio.beep() + audio.beep(300, 697.0) + audio.beep(300, 1633.0)),
        _blocks_of(mulaw_encode(rng.normal(0, 3000, 20000))),
        _blocks_of(audio.hold_music(500) + dtmf_tones("9") + speech[:3000]),
        _share_edge_blocks(_pair_share), _share_edge_blocks(_all_tones_share),
    ]
    keys = 0
    for blocks in sources:
        powers = audio._goertzel_powers(blocks)
        expected = [audio._classify(block, p) for block, p in zip(blocks, powers, strict=True)]
        assert audio._classify_blocks(blocks) == expected
        keys += sum(key is not None for key in expected)
    assert keys > 500  # the edge cases include plenty of blocks that do classify as keys


def test_prefilter_is_the_all_tones_share_test() -> None:
    # _maybe_keys computes "the 8 tone powers together carry the share" as one quadratic form; checked
    # here against the powers themselves on blocks within 1% of the limit on either side.
    blocks = _share_edge_blocks(_all_tones_share)
    total = audio._goertzel_powers(blocks).sum(axis=1)
    energy = np.einsum("ij,ij->i", blocks, blocks)
    expected = total > audio._MIN_SHARE * (1 - 1e-6) * energy
    assert 0.2 < expected.mean() < 0.8
    assert (audio._maybe_keys(blocks) == expected).all()


def test_prefilter_rejects_all_speech_without_exact_checks() -> None:
    # What makes detection cheap: every block of agent speech fails the one vectorised test.
    from sim.codec import encode_speech

    speech = encode_speech("Hello, this is the assistant calling about your appointment tomorrow. " * 4)
    for offset in (0, 40, 101):
        assert not audio._maybe_keys(_blocks_of(speech, offset)).any()


def _reference_is_silence(data: bytes, threshold: int = 200) -> bool:
    pcm = mulaw_decode(data).astype(np.float64)
    return len(data) == 0 or float(np.mean(pcm * pcm)) < threshold * threshold


def test_is_silence_equals_rms_test() -> None:
    from sim.codec import encode_speech

    rng = np.random.default_rng(5)
    speech = encode_speech("Hello, this is the assistant calling about your appointment tomorrow. " * 2)
    streams = [speech, audio.hold_music(2000), audio.beep(), dtmf_tones("123"), audio.silence(300)]
    # Noise at levels around the threshold, and single clicks in silence: where the shortcut must defer.
    streams += [mulaw_encode(rng.normal(0, sigma, 4000)) for sigma in (5, 50, 150, 190, 200, 210, 260, 2000)]
    click = bytearray(audio.silence(20))
    for loud in (1000, 2400, 2600, 9000):
        click[77] = mulaw_encode(np.array([loud], dtype=np.int16))[0]
        streams.append(bytes(click))
    checked = 0
    for data in streams:
        for size in (1, 7, 160, 800, 4000):
            for threshold in (200, 50, 1000):
                for i in range(0, len(data), size):
                    frame = data[i:i + size]
                    assert audio.is_silence(frame, threshold) == _reference_is_silence(frame, threshold)
                    checked += 1
    assert checked > 10000


def test_streaming_detection_reports_each_digit_in_the_chunk_completing_its_block() -> None:
    # Digital silence skips the arithmetic (after silence, outside a tone); chunkings that end inside
    # tones, gaps and speech must report each digit exactly where block-by-block feeding puts it.
    from sim.codec import encode_speech

    stream = (audio.silence(230) + dtmf_tones("1#", tone_ms=70, gap_ms=45) + encode_speech("hello there")
              + audio.silence(61) + dtmf_tones("7", tone_ms=300, gap_ms=0) + audio.silence(17)
              + dtmf_tones("D0", tone_ms=90, gap_ms=33) + audio.hold_music(300) + audio.silence(500))
    block = audio._BLOCK
    by_block = DtmfDetector()
    expected_blocks = [(i, d) for i in range(len(stream) // block)
                       for d in by_block.feed(stream[i * block:(i + 1) * block])]
    assert "".join(d for _, d in expected_blocks) == "1#7D0"
    for chunk in (1, 7, 101, 102, 160, 333, 4000):
        detector = DtmfDetector()
        got = [(min(i + chunk, len(stream)), d) for i in range(0, len(stream), chunk)
               for d in detector.feed(stream[i:i + chunk])]
        ends = [*range(chunk, len(stream), chunk), len(stream)]
        expected = [(next(e for e in ends if e >= (i + 1) * block), d) for i, d in expected_blocks]
        assert got == expected, chunk


def test_classify_mulaw_streams_equals_each_stream_on_its_own() -> None:
    from sim.codec import encode_speech

    def whole_blocks(data: bytes) -> bytes:
        return data[:len(data) - len(data) % audio._BLOCK]

    speech = encode_speech("one moment please, I will put you through")
    edges = mulaw_encode(np.clip(_share_edge_blocks(_pair_share)[:300].ravel(), -32768, 32767))
    streams = [whole_blocks(dtmf_tones("147*", tone_ms=70, gap_ms=40)[9:]), whole_blocks(speech[:400]),
               whole_blocks(edges), whole_blocks(audio.hold_music(400)),
               dtmf_tones("0#", tone_ms=90, gap_ms=30)[60:60 + audio._BLOCK]]
    keys = 0
    for chosen in ([0], [1], [1, 3], [0, 1, 2, 3, 4], [4, 2, 0]):
        picked = [streams[i] for i in chosen]
        expected = [audio._classify_blocks(_blocks_of(b)) for b in picked]
        assert audio.classify_mulaw_streams(picked) == expected
        keys += sum(k is not None for e in expected for k in e)
    assert keys > 100
    assert audio.classify_mulaw_streams([]) == []
