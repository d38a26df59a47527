"""sim.codec: text carried in natural-length mu-law audio, decoded back from the audio alone."""

from __future__ import annotations

import numpy as np
import pytest

from sim import audio
from sim.audio import dtmf_tones
from sim.codec import (
    SYNC,
    SpeechDecoder,
    encode_speech,
    encode_words,
    pause_ms,
    split_words,
    word_ms,
)

SENTENCES = [
    "Hello, this is Alex calling on behalf of Sam Jones.",
    "Your reference is W123, and the callback number is 555-0100!",
    "Grüße aus Köln — ça va? 東京 ok",
    "Yes",
]


def decode(data: bytes, chunks: list[int] | int = 160) -> list[str]:
    decoder = SpeechDecoder()
    words = []
    pos = 0
    sizes = [chunks] if isinstance(chunks, int) else chunks
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        words += [w.word for w in decoder.feed(data[pos:pos + size])]
        pos += size
        i += 1
    return words


@pytest.mark.parametrize("text", SENTENCES)
def test_round_trip(text: str) -> None:
    assert decode(encode_speech(text)) == text.split()


@pytest.mark.parametrize("chunks", [1, 7, 160, 1_000_000, [3, 500, 1, 160, 41]])
def test_round_trip_any_chunking(chunks: list[int] | int) -> None:
    text = " ".join(SENTENCES)
    assert decode(encode_speech(text), chunks) == text.split()


def test_timing_matches_target_and_speaking_rate() -> None:
    text = SENTENCES[0]
    data = encode_speech(text)
    words = text.split()
    target = sum(word_ms(w) for w in words) + sum(pause_ms(w) for w in words[:-1])
    assert audio.ms_of(data) == pytest.approx(target, rel=0.10)
    wpm = len(words) / (audio.ms_of(data) / 60000)
    assert 130 <= wpm <= 200
    fast = encode_speech(text, rate=2.0)
    assert audio.ms_of(fast) == pytest.approx(audio.ms_of(data) / 2, rel=0.10)
    assert decode(fast) == words


def test_word_durations_and_pauses() -> None:
    assert word_ms("a") == 150
    assert word_ms("calling") == 7 * 55
    assert word_ms("555-0100") == 7 * 200
    assert word_ms("calling", rate=0.5) == 2 * 7 * 55
    assert pause_ms("yes,") == 150
    assert pause_ms("done.") == pause_ms("really?") == 300
    assert 60 <= pause_ms("plain") <= 90
    decoder = SpeechDecoder()
    heard = decoder.feed(encode_speech("one, two three"))
    assert [round(h.end_ms - h.start_ms) for h in heard] == [165, 165, 275]
    assert heard[0].start_ms == 0
    assert heard[1].start_ms - heard[0].end_ms == pytest.approx(150)


def test_encode_words_concatenates_to_speech_plus_final_pause() -> None:
    text = "Press one, then wait."
    parts = encode_words(text)
    assert [w for w, _ in parts] == text.split()
    joined = b"".join(a for _, a in parts)
    assert joined == encode_speech(text) + audio.silence(pause_ms("wait."))
    assert encode_speech("") == b"" and encode_words("  ") == []


def test_prefix_cut_mid_word_yields_only_fully_played_words() -> None:
    parts = encode_words("I would like to cancel my order please")
    cut = sum(len(a) for _, a in parts[:3]) + len(parts[3][1]) // 3  # a third into "to"
    data = b"".join(a for _, a in parts)[:cut]
    decoder = SpeechDecoder()
    assert [w.word for w in decoder.feed(data)] == ["I", "would", "like"]
    assert decoder.in_speech
    assert decoder.speech_started_ms == pytest.approx(sum(len(a) for _, a in parts[:3]) / 8)
    # Barge-in: the cut word is lost even though silence fills out its duration, and speech after it
    # decodes normally.
    assert decoder.feed(audio.silence(40)) == []
    assert not decoder.in_speech
    assert decoder.last_word_end_ms == pytest.approx(sum(len(a) for _, a in parts[:2]) / 8 + word_ms("like"))
    after = decoder.feed(audio.silence(500) + encode_speech("Sorry, go on."))
    assert [w.word for w in after] == ["Sorry,", "go", "on."]
    for filler in (audio.hold_music(1000), audio.silence(1000)):
        assert decode(data + filler, 7) == ["I", "would", "like"]


def test_cut_followed_immediately_by_new_speech_drops_cut_word() -> None:
    first = encode_speech("interrupted sentence")
    cut = first[: len(first) - 100]
    words = decode(cut + encode_speech("new words"))
    assert words == ["interrupted", "new", "words"]


def test_word_completes_only_when_whole_duration_fed() -> None:
    data = encode_speech("hello")
    decoder = SpeechDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.in_speech and decoder.last_word_end_ms is None
    heard = decoder.feed(data[-1:])
    assert [w.word for w in heard] == ["hello"]
    assert heard[0].end_ms == pytest.approx(audio.ms_of(data))
    assert not decoder.in_speech
    assert decoder.last_word_end_ms == pytest.approx(audio.ms_of(data))
    assert decoder.position_ms == pytest.approx(audio.ms_of(data))


def test_mixed_with_silence_music_dtmf() -> None:
    data = (
        audio.silence(300) + encode_speech("Please hold.") + audio.hold_music(2000)
        + audio.dtmf_tones("123#") + audio.beep() + encode_speech("Thanks for holding.")
    )
    assert decode(data) == ["Please", "hold.", "Thanks", "for", "holding."]
    decoder = SpeechDecoder()
    heard = decoder.feed(data)
    assert heard[0].start_ms == pytest.approx(300)


def test_noise_and_corrupted_packets_never_decode() -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    assert decode(noise + SYNC * 50 + noise[:1000], 4096) == []
    speech = bytearray(encode_speech("secret words"))
    speech[len(SYNC) + 6] ^= 0x20  # flip a bit inside the first word's text
    assert decode(bytes(speech)) == ["words"]


def test_codec_audio_is_voice_like() -> None:
    data = encode_speech(" ".join(SENTENCES))
    frames = [data[i:i + 160] for i in range(0, len(data) - 160, 160)]
    detector = audio.DtmfDetector()
    assert detector.feed(data) == []
    assert 0xFF not in encode_speech("word")[20:]
    assert not audio.is_silence(encode_speech("word")[20:])
    # Only the pauses between words read as silence.
    silent = sum(audio.is_silence(f) for f in frames)
    assert 0 < silent < len(frames) / 2


def test_split_words_cuts_overlong_tokens() -> None:
    token = "x" * 450
    assert [len(w) for w in split_words(f"a {token}")] == [1, 200, 200, 50]
    assert decode(encode_speech(token)) == split_words(token)


def test_heard_words_come_in_order_of_their_end() -> None:
    # The callee's wait for the agent tests only the last heard word's end (sim/scenarios/engine.py):
    # words must come out in order of their end, also across cuts, silence and other audio.
    speech = encode_speech("one two three, four five six seven. Eight nine ten")
    stream = (speech[:3000] + audio.silence(300) + speech + audio.hold_music(400) + speech[1234:]
              + dtmf_tones("5") + speech)
    for chunk in (1, 160, 777):
        decoder = SpeechDecoder()
        ends = [w.end_ms for i in range(0, len(stream), chunk) for w in decoder.feed(stream[i:i + chunk])]
        assert len(ends) > 20 and ends == sorted(ends) and len(set(ends)) == len(ends)
