"""End to end, real SDKs against sim/: a full outbound call, end_call after the goodbye is heard, no leaks."""

from __future__ import annotations

import asyncio
import contextlib
import os

from sqlmodel import select

from dialer.demo import TASKS, demo_brain
from shared import events
from shared.models import TranscriptLine

FAST = {"speed": 8, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def test_full_outbound_call_with_goodbye_heard_before_hangup(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        call_id = await stack.place_call(number, task)
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
        async with stack.db.session() as s:
            lines = (await s.exec(select(TranscriptLine).where(TranscriptLine.call_id == call_id)
                                  .order_by(TranscriptLine.seq))).all()
    assert call.status == "completed" and call.answered_by == "human"
    assert call.end_reason == "task done" and call.outcome == "achieved" and call.summary
    assert call.answered_at is not None and call.ended_at is not None and call.duration_s
    # Transcript: persisted in order, the same lines as published live.
    said = [(ln.speaker, ln.text) for ln in lines]
    assert ("callee", "Sure, that works for me.") in said
    assert ("agent", "Great, so Tuesday at 3 pm is confirmed. Thank you!") in said
    assert said[-1] == ("agent", "Goodbye!")
    live = [(e.speaker, e.text) for e in stack.of(call_id, events.CALL_TRANSCRIPT)]
    assert live == said and [ln.seq for ln in lines] == list(range(1, len(lines) + 1))
    # end_call: the goodbye was played to the end before the agent hung up.
    assert phone.end_reason and phone.log.heard and phone.log.heard[-1].word.lower().startswith("goodbye")
    assert [e.kind for e in stack.of(call_id, events.CALL_ACTION)].count("end_call") == 1
    assert phone.log.error_codes() == []
    # Latency per turn stored as p50/p95, and every status change published once, in order.
    assert call.latency["turns"] >= 2 and call.latency["first_audio_ms"]["p50"] > 0
    statuses = [e.status for e in stack.of(call_id, events.CALL_STATUS)]
    assert statuses[:3] == ["dialing", "initiated", "ringing"] and statuses[-1] == "completed"
    assert len(stack.of(call_id, events.CALL_ENDED)) == 1


async def test_no_task_or_socket_leaks_after_calls_end(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        marks: list[tuple[int, int]] = []
        for _ in range(3):
            call_id = await stack.place_call(number, task)
            await stack.wait_end(call_id, timeout_s=20)
            await asyncio.sleep(0.3)  # let closed sockets finish their closing handshakes
            marks.append((len(asyncio.all_tasks()), open_sockets()))
        leftover = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("call-")]
        assert stack.registry.active_count() == 0 and leftover == []
    # Keep-alive pools make the first call's numbers the baseline; later calls must not add to them.
    (tasks1, socks1), _, (tasks3, socks3) = marks
    assert tasks3 <= tasks1, marks
    assert socks3 <= socks1, marks


async def test_callee_first_words_at_pickup_are_heard(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    # Real time: at a speed factor, our own set-up time (webhook, stream, STT socket) would stretch into
    # seconds of call time, longer than anyone waits after "Hello?".
    async with call_stack(brain=demo_brain(), speed=1, llm_ttft_s=0.03, llm_tokens_per_s=400) as stack:
        call_id = await stack.place_call(number, task)
        await stack.wait_for(lambda: stack.of(call_id, events.CALL_TRANSCRIPT), timeout_s=10)
        first = stack.of(call_id, events.CALL_TRANSCRIPT)[0]
        stack.network.calls[stack.phone_call(call_id).sid].hang_up("test over")
        await stack.wait_end(call_id, timeout_s=10)
    assert (first.speaker, first.text) == ("callee", "Hello?")


async def test_callee_last_words_before_hanging_up_are_kept(call_stack) -> None:  # type: ignore[no-untyped-def]
    """Hung up mid-sentence, before endpointing: the words still reach the transcript."""
    from sim.scenarios import Scenario
    from sim.scenarios.steps import hangup, say, wait_for_agent

    scenario = Scenario("hang_up_fast", [say("Hello?"), wait_for_agent(silence_ms=800),
                                         say("Sorry, wrong number, bye."), hangup()], ring_ms=500)
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        stack.network.attach("+12125550160", scenario)
        call_id = await stack.place_call("+12125550160", "Confirm the appointment on Tuesday at 3 pm.")
        await stack.wait_end(call_id, timeout_s=20)
        async with stack.db.session() as s:
            lines = (await s.exec(select(TranscriptLine).where(TranscriptLine.call_id == call_id)
                                  .order_by(TranscriptLine.seq))).all()
    assert [(ln.speaker, ln.text) for ln in lines][-1] == ("callee", "Sorry, wrong number, bye.")
