"""The network's ticker: every line of a clock ticks from one task, each on its own 20 ms phase."""

from __future__ import annotations

import asyncio

import pytest

from sim.audio import FRAME_MS, dtmf_tones
from sim.twilio.calllog import CallLog
from sim.twilio.clock import Clock
from sim.twilio.line import Line
from sim.twilio.ticker import PHASE_MS


async def test_lines_keep_their_own_phase_and_real_time() -> None:
    clock = Clock(speed=5.0)
    lines = [Line(clock, CallLog(), lambda: None) for _ in range(3)]
    tasks = [asyncio.create_task(lines[0].run())]
    await asyncio.sleep(0.013)  # a later call starts between two grid points
    tasks += [asyncio.create_task(line.run()) for line in lines[1:]]
    await asyncio.sleep(0.4)  # 2 s of call at speed 5
    for line in lines:
        line.stop()
    await asyncio.gather(*tasks)
    assert all(line.start_ms % PHASE_MS == 0 for line in lines)
    # Lines that started together share a wake-up; a call that started later keeps its own phase, as
    # unrelated real calls do (their frames do not all reach the call server at the same instant).
    assert lines[1].due_ms == lines[2].due_ms
    assert all((line.due_ms - line.start_ms) % FRAME_MS == 0 for line in lines)
    frames = [len(line.outbound_track) // 160 for line in lines]
    assert frames[0] == pytest.approx(100, abs=4) and frames[1] == pytest.approx(100 - 0.013 * 250, abs=4)


async def test_a_failing_line_does_not_stop_the_others() -> None:
    clock = Clock(speed=5.0)
    good, bad = Line(clock, CallLog(), lambda: None), Line(clock, CallLog(), lambda: None)

    def broken(_: float) -> None:
        raise RuntimeError("boom")

    bad._step = broken  # type: ignore[method-assign]
    tasks = [asyncio.create_task(good.run()), asyncio.create_task(bad.run())]
    with pytest.raises(RuntimeError, match="boom"):
        await tasks[1]
    await asyncio.sleep(0.1)
    good.stop()
    await tasks[0]
    assert bad.stopped and len(good.outbound_track) // 160 >= 20


async def test_tones_detected_per_round_as_frame_by_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every line's keypad-tone check runs once per ticker round over all lines' frames; each digit must
    # still be logged with the end of the frame that completed it, exactly as feeding the line's own
    # played audio to a detector frame by frame logs it.
    from sim.audio import DtmfDetector, classify_mulaw_streams, silence
    from sim.codec import encode_speech
    from sim.twilio import tones

    batch_sizes: list[int] = []

    def recording(streams: list) -> list:
        batch_sizes.append(len(streams))
        return classify_mulaw_streams(streams)

    monkeypatch.setattr(tones, "classify_mulaw_streams", recording)

    clock = Clock(speed=10.0)
    keyed = ["12", "#0*", "9D", "555"]
    lines = [Line(clock, CallLog(), lambda: None) for _ in keyed]
    for i, (line, digits) in enumerate(zip(lines, keyed, strict=True)):
        line.play_to_callee(silence(30 * i) + encode_speech("press the keys now")
                            + dtmf_tones(digits, tone_ms=60 + 10 * i, gap_ms=50) + encode_speech("thanks"))
    tasks = [asyncio.create_task(line.run()) for line in lines]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(Line(clock, CallLog(), lambda: None).run()))  # a silent line too
    await asyncio.gather(*(line.drain() for line in lines))
    for line in lines:
        line.stop()
    await asyncio.gather(*tasks[:-1])
    tasks[-1].cancel()
    for line, digits in zip(lines, keyed, strict=True):
        detector = DtmfDetector()
        played = bytes(line.outbound_track)
        expected = [(line.start_ms + (k + 1) * FRAME_MS, d, "inband")
                    for k in range(len(played) // 160) for d in detector.feed(played[k * 160:(k + 1) * 160])]
        assert line.log.digits == expected
        assert "".join(d for _, d, _ in expected) == digits
    assert max(batch_sizes) == len(lines)  # the lines that started together were checked in one pass
