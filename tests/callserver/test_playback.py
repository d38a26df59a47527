"""Playback units: one media + one mark per TTS chunk, and the heard position between two mark echoes."""

from __future__ import annotations

import pytest

from callserver import playback
from callserver.playback import BYTES_PER_MS, HEARD_MARGIN_MS, MAX_MEDIA_BYTES, Playback, Utterance


class Sink:
    """Records what Playback sends, in order (the AudioSink a MediaStream is)."""

    def __init__(self) -> None:
        self.closed = False
        self.sent: list[tuple[str, object]] = []

    async def send_audio(self, mulaw: bytes) -> None:
        self.sent.append(("media", len(mulaw)))

    async def send_mark(self, name: str) -> None:
        self.sent.append(("mark", name))

    async def send_clear(self) -> None:
        self.sent.append(("clear", None))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(playback.time, "monotonic", fake)
    return fake


async def test_each_chunk_is_one_media_and_one_mark_long_ones_split() -> None:
    play, sink = Playback(), Sink()
    play.attach(sink)
    seg = play.segment(Utterance(), "hello there")
    assert await play.send(seg, b"\xff" * 1600)
    assert await play.send(seg, b"\xff" * (MAX_MEDIA_BYTES + 10))
    assert sink.sent == [("media", 1600), ("mark", "a1"), ("media", MAX_MEDIA_BYTES), ("mark", "a2"),
                         ("media", 10), ("mark", "a3")]
    assert play.queued == seg.received == 1600 + MAX_MEDIA_BYTES + 10


async def test_heard_position_interpolates_between_marks_never_past_the_next(clock: Clock) -> None:
    play = Playback()
    play.attach(Sink())
    seg = play.segment(Utterance(), "x")
    await play.send(seg, b"\xff" * 4000)  # 500 ms, sent at t=1000 s
    await play.send(seg, b"\xff" * 4000)
    assert play.heard_position() == 0  # nothing can have played yet
    clock.now += (HEARD_MARGIN_MS + 100) / 1000
    assert play.heard_position() == pytest.approx(100 * BYTES_PER_MS, abs=1)  # 100 ms past the margin
    clock.now += 10.0
    assert play.heard_position() == 4000  # capped at the first mark: its echo has not come
    play.on_mark("a1")  # echoed at t: the second chunk starts playing now
    assert play.played == 4000 and play.heard_position() == 4000
    clock.now += (HEARD_MARGIN_MS + 250) / 1000
    assert play.heard_position() == pytest.approx(4000 + 250 * BYTES_PER_MS, abs=1)
    play.on_mark("a2")
    assert play.heard_position() == play.played == play.queued == 8000 and not play.speaking


async def test_a_chunk_sent_after_the_buffer_ran_dry_plays_from_when_it_was_sent(clock: Clock) -> None:
    play = Playback()
    play.attach(Sink())
    seg = play.segment(Utterance(), "x")
    await play.send(seg, b"\xff" * 800)
    play.on_mark("a1")
    clock.now += 5.0  # silence: the next chunk arrives from TTS long after the echo
    await play.send(seg, b"\xff" * 800)
    assert play.heard_position() == 800
    clock.now += (HEARD_MARGIN_MS + 50) / 1000
    assert play.heard_position() == pytest.approx(800 + 50 * BYTES_PER_MS, abs=1)  # float clock


async def test_heard_words_follow_the_interpolated_position_and_a_clear_starts_afresh(clock: Clock) -> None:
    play, sink = Playback(), Sink()
    play.attach(sink)
    utt = Utterance()
    seg = play.segment(utt, "one two three four")  # 18 chars over 4000 bytes
    await play.send(seg, b"\xff" * 4000)
    seg.done = True
    clock.now += (HEARD_MARGIN_MS + 300) / 1000  # 2400 bytes = 10.8 chars: "one two" ends at 7
    assert play.heard(utt) == "one two"
    await play.clear()
    assert sink.sent[-1] == ("clear", None) and not play.speaking
    play.on_mark("a1")  # the echo forced by clear moves nothing
    assert play.played == play.queued == 4000
    clock.now += 10.0
    after = Utterance()
    seg2 = play.segment(after, "five six")
    await play.send(seg2, b"\xff" * 800)
    seg2.done = True
    assert play.heard(after) == ""  # the time before the clear does not count for new audio
    clock.now += (HEARD_MARGIN_MS + 100) / 1000
    assert play.heard(after) == "five six"
