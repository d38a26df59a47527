"""The outbound jitter buffer: frames of the agent's audio in order, marks echoed with their audio."""

from __future__ import annotations

import random

from sim.audio import MULAW_SILENCE
from sim.twilio.playout import PendingMark, Playout


def test_frames_and_marks_follow_the_queued_stream() -> None:
    # Against a model: the concatenated audio, each mark at the byte count queued before it. A frame
    # returns the next n bytes (silence-padded) and every mark whose position is within what has been
    # played by the end of the frame (marks right after a frame's last byte come with that frame).
    rng = random.Random(11)
    for _ in range(200):
        playout, stream, marks_at, played = Playout(), bytearray(), [], 0
        returned: list[str] = []
        for step in range(rng.randint(1, 60)):
            action = rng.random()
            if action < 0.35:
                chunk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 80, 160, 161, 320, 4000])))
                playout.push_audio(chunk)
                stream += chunk
            elif action < 0.5:
                name = f"m{step}"
                playout.push_mark(PendingMark(name, returned.append))
                marks_at.append((len(stream), name))
            elif action < 0.53:
                cleared = [m.name for m in playout.clear()]
                assert cleared == [name for _, name in marks_at]
                stream, marks_at, played = bytearray(), [], 0
            else:
                audio, real, marks = playout.take(160)
                want = bytes(stream[played:played + 160])
                assert real == len(want) and audio == want + bytes([MULAW_SILENCE]) * (160 - len(want))
                played += real
                due = [name for at, name in marks_at if at <= played]
                assert [m.name for m in marks] == due
                marks_at = [(at, name) for at, name in marks_at if at > played]
                assert playout.queued_bytes == len(stream) - played
                marks.append(PendingMark("x", returned.append))  # callers may add to the list they get
