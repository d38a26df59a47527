"""Hold for me (issue 9) end to end on sim/ with the real SDKs: the agent gets through an IVR menu and a
hold queue; when a person picks up it says it is connecting, rings the owner's own number on a second
leg and joins the two in a conference (owner answers), or carries on itself (owner does not answer)."""

from __future__ import annotations

from typing import Any

import pytest

from callserver import bridge
from dialer.demo import OWNER_NUMBER
from shared import events
from sim.llm_script import Rule, ScriptedBrain, ToolCall
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import hangup, hold, menu, pause, say, wait_for_agent

FAST = {"speed": 8, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}
PAYER = "+12125550170"
TASK = "Get the reference number of the prior authorisation for member W123."
ANNOUNCEMENT = "Thank you for holding. Your call is important to us."
BYE = [ToolCall("end_call", {"reason": "task done"})]


def brain() -> ScriptedBrain:
    return ScriptedBrain([
        Rule(user=r"for prior authori[sz]ation, press (\d)", priority=5,
             calls=[ToolCall("press_digits", {"digits": "{1}"})]),
        Rule(user=r"did not pick up", priority=6,
             say="Sam couldn't join, so I'll carry on. I'm calling about the prior authorisation for member "
                 "W 1 2 3."),
        Rule(user=r"reference number is ([A-Z]{2}-\d+)", priority=7, say="Thank you, noted {1}. Goodbye!",
             calls=[ToolCall("note_fact", {"label": "reference number", "value": "{1}"}), *BYE]),
        Rule(user=r"how can I help", priority=2, say="Hi, I'm calling for Sam Lee about a prior "
             "authorisation."),
    ], default="")


def payer(after_person: list[Any]) -> Scenario:
    queue = [say("Please hold while I transfer you."), hold(40, 15, ANNOUNCEMENT),
             say("Hi, this is Dana, how can I help?"), *after_person]
    return Scenario("payer", [menu("Thank you for calling Acme Health. For prior authorisation, press 1.",
                                   {"1": queue})], ring_ms=500)


def actions(stack: Any, call_id: int, kind: str) -> list[dict[str, Any]]:
    return [e.detail for e in stack.of(call_id, events.CALL_ACTION) if e.kind == kind]


@pytest.fixture(autouse=True)
def _fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "POLL_S", 0.1)


async def test_hold_for_me_owner_answers_and_is_joined(call_stack) -> None:  # type: ignore[no-untyped-def]
    owner = Scenario("owner", [pause(3000), say("Hi Dana, this is Sam Lee speaking."), pause(8000), hangup()],
                     ring_ms=1500)
    scenario = payer([wait_for_agent(phrase=r"one moment", timeout=30_000),
                      wait_for_agent(silence_ms=60_000, timeout=60_000)])
    async with call_stack(brain=brain(), **FAST) as stack:
        stack.network.attach(PAYER, scenario)
        stack.network.attach(OWNER_NUMBER, owner)
        call_id = await stack.place_call(PAYER, TASK, bridge=True)
        call = await stack.wait_end(call_id, timeout_s=40)
        phone = stack.phone_call(call_id)
        legs = [c for c in stack.network.calls.values() if c.to == OWNER_NUMBER]
    heard = phone.log.heard_text().lower()
    assert [d for _, d, _ in phone.log.digits] == ["1"]
    assert actions(stack, call_id, "on_hold") and actions(stack, call_id, "off_hold")
    assert "let me connect you with the person i'm calling for" in heard
    # The owner's own phone was rung on a second leg, and the two met in the call's conference room:
    # the payer's person heard the owner's voice.
    assert len(legs) == 1 and legs[0].status == "completed"
    room = stack.network.conferences[f"dialer-call-{call_id}"]
    assert {sid for sid, _ in room.joined} == {legs[0].sid, phone.sid}
    assert "this is sam lee speaking" in heard
    assert [a["stage"] for a in actions(stack, call_id, "bridge")] == ["ringing", "joined"]
    assert call.status == "transferred" and "bridged" in call.end_reason
    # No LLM turn answered the person who picked up: the agent only said its fixed connecting line.
    assert "calling for sam lee about a prior" not in heard


async def test_hold_for_me_owner_does_not_answer_agent_carries_on(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = payer([wait_for_agent(phrase=r"carry on", timeout=120_000),
                      wait_for_agent(silence_ms=800),
                      say("Sure. The reference number is PA-5521."),
                      wait_for_agent(silence_ms=3000)])
    async with call_stack(brain=brain(), bridge_ring_timeout_s=10, **FAST) as stack:
        stack.network.attach(PAYER, scenario)
        stack.network.attach(OWNER_NUMBER, Scenario("owner away", [], outcome="no-answer"))
        call_id = await stack.place_call(PAYER, TASK, bridge=True)
        call = await stack.wait_end(call_id, timeout_s=40)
        phone = stack.phone_call(call_id)
        legs = [c for c in stack.network.calls.values() if c.to == OWNER_NUMBER]
    heard = phone.log.heard_text().lower()
    assert len(legs) == 1 and legs[0].status == "no-answer"
    assert "let me connect you" in heard and "sam couldn't join, so i'll carry on" in heard
    assert [a["stage"] for a in actions(stack, call_id, "bridge")] == ["ringing", "no_answer"]
    assert {"label": "reference number", "value": "PA-5521"} in call.facts
    assert call.status == "completed"
