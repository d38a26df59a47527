"""The callee's mouth: what it sends each 20 ms frame (segments, background, silence)."""

from __future__ import annotations

from sim.audio import FRAME_BYTES, SILENT_FRAME, hold_music
from sim.codec import encode_speech
from sim.twilio.mouth import Mouth, Segment


def test_frames_are_segments_then_background_cycling_on() -> None:
    music = hold_music(130)  # 1040 bytes: not a whole number of frames, so it wraps mid-frame
    word = encode_speech("hello")
    mouth = Mouth()
    assert [mouth.next_frame(20.0 * k).audio for k in range(3)] == [SILENT_FRAME] * 3
    mouth.set_background(music)
    frames = [mouth.next_frame(60.0 + 20 * k) for k in range(10)]
    mouth.queue(Segment("word", "hello", word))
    frames += [mouth.next_frame(260.0 + 20 * k) for k in range(len(word) // FRAME_BYTES + 5)]
    played = b"".join(f.audio for f in frames)
    assert all(len(f.audio) == FRAME_BYTES for f in frames)
    # Background up to the word, the whole word, then the background resumes where it left off.
    cycle = music * 20
    assert played[:1600] == cycle[:1600]
    assert played[1600:1600 + len(word)] == word
    rest = played[1600 + len(word):]
    assert rest == cycle[1600:1600 + len(rest)]
    assert [f.speech for f in frames[9:12]] == [False, True, True] and not frames[-1].speech
    assert [s.label for f in frames for s in f.finished] == ["hello"]
