"""The network's ticker: every line of a clock ticks from one task, each on its own 20 ms phase."""

from __future__ import annotations

import asyncio

import pytest

from sim.audio import FRAME_MS
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
