"""End to end, real SDKs against sim/: an STT socket drop survived, an LLM failure answered without dead
air, a forged webhook refused while a call is live."""

from __future__ import annotations

from typing import Any

import httpx

from dialer.demo import TASKS, demo_brain
from shared import events

FAST: dict[str, Any] = {"speed": 12, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}
CALLEE_LINES = ["Sure, that works for me.", "Okay, thanks.", "Goodbye!"]


def callee_lines(stack: Any, call_id: int) -> list[str]:
    return [e.text for e in stack.of(call_id, events.CALL_TRANSCRIPT) if e.speaker == "callee"]


async def test_stt_socket_drops_mid_call_lose_no_callee_turn(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        stack.emulators.deepgram.faults.drop_ws_after_s = 0.6  # every STT socket dies after 0.6 s
        call_id = await stack.place_call(number, task)
        call = await stack.wait_end(call_id, timeout_s=25)
        sockets = len(stack.emulators.deepgram.sessions)
    assert sockets >= 3, "the STT socket was dropped and reopened several times"
    assert [ln for ln in callee_lines(stack, call_id) if ln in CALLEE_LINES] == CALLEE_LINES
    assert call.status == "completed" and call.end_reason == "task done"


async def test_llm_failure_falls_back_to_the_other_provider(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), llm_fallback_provider="anthropic", **FAST) as stack:
        stack.emulators.openai.faults.http_status = 500
        call_id = await stack.place_call(number, task)
        call = await stack.wait_end(call_id, timeout_s=25)
    agent = [e.text for e in stack.of(call_id, events.CALL_TRANSCRIPT) if e.speaker == "agent"]
    assert "Great, so Tuesday at 3 pm is confirmed. Thank you!" in agent
    assert stack.emulators.anthropic.requests and call.end_reason == "task done"


async def test_llm_down_everywhere_gets_an_apology_not_dead_air(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        stack.emulators.openai.faults.http_status = 500
        call_id = await stack.place_call(number, task)
        await stack.wait_for(lambda: [e for e in stack.of(call_id, events.CALL_TRANSCRIPT)
                                      if e.speaker == "agent"], timeout_s=15)
        phone = stack.phone_call(call_id)
        await stack.wait_for(lambda: phone.log.heard, timeout_s=10)
        first_reply = next(e for e in stack.of(call_id, events.CALL_TRANSCRIPT) if e.speaker == "agent")
        answered_turn = phone.log.response_gaps[0] if phone.log.response_gaps else None
        stack.network.calls[phone.sid].hang_up("test over")
        await stack.wait_end(call_id, timeout_s=15)
    assert first_reply.text and "sorry" in first_reply.text.lower()
    assert stack.emulators.openai.faults.failed >= 2  # tried, retried once, then apologised
    assert answered_turn is not None
    gap_ms = answered_turn[1] - answered_turn[0]
    assert gap_ms < 3000, f"{gap_ms:.0f} ms of call time before the apology"


async def test_forged_webhook_refused_during_a_live_call(call_stack) -> None:  # type: ignore[no-untyped-def]
    number, task = TASKS["friendly_human"]
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        call_id = await stack.place_call(number, task)
        await stack.wait_for(lambda: stack.registry.active_count() == 1, timeout_s=10)
        async with httpx.AsyncClient() as client:
            forged = await client.post(f"{stack.url}/twilio/status?call_id={call_id}",
                                       data={"CallSid": "CAforged", "CallStatus": "completed"},
                                       headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
            unsigned = await client.post(f"{stack.url}/twilio/voice?call_id={call_id}", data={"CallSid": "x"})
        assert forged.status_code == 403 and unsigned.status_code == 403
        assert stack.registry.active_count() == 1  # the live call went on untouched
        call = await stack.wait_end(call_id, timeout_s=20)
    assert call.end_reason == "task done" and call.status == "completed"
