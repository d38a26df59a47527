"""The owner in the loop (issue 9), call server end to end on sim/ with the real SDKs: ask_owner answered
from the bus (as the bot sends it) and timed out, on OpenAI and Anthropic; a hint on a line reaches the LLM
context tied to that line and is never spoken. The chat side (buttons, free text, replies) is in
tests/bot/test_e2e_owner_chat.py."""

from __future__ import annotations

from typing import Any

import pytest

from callserver.owner_loop import HOLDING_REPLY as HOLDING
from shared import events
from sim.llm_script import Rule, ScriptedBrain, ToolCall
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import say, wait_for_agent

FAST = {"speed": 8, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}
CLINIC = "+12125550160"
TASK = "Book Sam's yearly check-up at the clinic."
BYE = [ToolCall("end_call", {"reason": "task done"})]
ASK = ToolCall("ask_owner", {"question": "They offer Tuesday at 3 pm. Accept?", "options": ["Yes", "No"]})


def owner_brain() -> ScriptedBrain:
    return ScriptedBrain([
        Rule(user=r"how can I help", priority=2, say="Hi, I'm Alex, an AI assistant calling for Sam Lee to "
             "book a check-up."),
        Rule(user=r"Tuesday at 3 pm", priority=3, say="Let me check with Sam. Could you hold a moment?",
             calls=[ASK]),
        Rule(after_tool="ask_owner", tool_result=r"answered: \"yes\b", priority=5,
             say="Thank you for holding. Tuesday at 3 pm works, please book it."),
        Rule(after_tool="ask_owner", tool_result=r"answered: \"(?!yes\b)([^\"]+)\"", priority=4,
             say="Thank you for holding. Sam says: {1}."),
        Rule(after_tool="ask_owner", tool_result=r"No answer", priority=5,
             say="I'm sorry, I couldn't reach Sam. Someone will call you back about this. Goodbye!",
             calls=BYE),
        Rule(user=r"Private hint .*line \"([^\"]+)\".*: ([^.]+)\. Use it.*which claim", priority=6,
             say="It's the claim from March, thank you."),
        Rule(user=r"which claim", priority=1, say="Sorry, I don't know which claim."),
        Rule(user=r"goodbye|bye", priority=5, say="Goodbye!", calls=BYE),
    ], default="")


def clinic(wait_ms: float = 60_000) -> Scenario:
    return Scenario("clinic", [
        say("City Clinic, this is Rita. How can I help?"),
        wait_for_agent(silence_ms=800),
        say("We can offer Tuesday at 3 pm. Does that work?"),
        wait_for_agent(silence_ms=1000),
        say("Sure, take your time."),
        wait_for_agent(phrase=r"sam says|please book it|call you back", timeout=wait_ms),
        wait_for_agent(silence_ms=800),
        say("Perfect, you're booked. Goodbye."),
        wait_for_agent(silence_ms=3000),
    ], ring_ms=500)


def actions(stack: Any, call_id: int, kind: str) -> list[dict[str, Any]]:
    return [e.detail for e in stack.of(call_id, events.CALL_ACTION) if e.kind == kind]


def lines(stack: Any, call_id: int) -> list[tuple[str, str]]:
    return [(e.speaker, e.text) for e in stack.of(call_id, events.CALL_TRANSCRIPT)]


def requests(stack: Any, llm: str) -> list[Any]:
    emulator = stack.emulators.openai if llm == "openai" else stack.emulators.anthropic
    return [r for r in emulator.requests if r.conversation.tools]


async def answer(stack: Any, call_id: int, text: str) -> dict[str, Any]:
    question = await stack.wait_for(lambda: [a for a in actions(stack, call_id, "ask_owner") if "id" in a],
                                    timeout_s=20)
    await stack.bus.publish(events.CALL_COMMAND, events.CallCommand(
        call_id=call_id, kind="answer", ref=question[0]["id"], text=text))
    return question[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("llm", ["openai", "anthropic"])
async def test_ask_owner_answered_within_the_turn(call_stack, llm: str) -> None:  # type: ignore[no-untyped-def]
    async with call_stack(brain=owner_brain(), llm=llm, ask_owner_keepalive_s=4, **FAST) as stack:
        stack.network.attach(CLINIC, clinic())
        call_id = await stack.place_call(CLINIC, TASK)
        # The owner is slow: the callee speaks meanwhile and gets the fixed holding reply first.
        await stack.wait_for(lambda: ("agent", HOLDING) in lines(stack, call_id), timeout_s=20)
        question = await answer(stack, call_id, "Only if it is after 4 pm")
        call = await stack.wait_end(call_id, timeout_s=30)
        phone = stack.phone_call(call_id)
        sent = requests(stack, llm)
    assert question["question"] == "They offer Tuesday at 3 pm. Accept?"
    assert question["options"] == ["Yes", "No"]
    heard = phone.log.heard_text().lower()
    # The agent asked the callee to hold, and the owner's answer reached it as the tool result in one turn.
    assert "could you hold" in heard and "sam says: only if it is after 4 pm." in heard
    after_answer = [r for r in sent if r.conversation.pending_tool_results()]
    result = after_answer[0].conversation.pending_tool_results()[-1].text
    assert 'answered: "Only if it is after 4 pm".' in result
    # The callee's words during the wait got a fixed holding reply (no LLM) and went back with the answer.
    assert 'the callee said: "Sure, take your time."' in result
    asked = next(i for i, r in enumerate(sent) if any(c.name == "ask_owner" for t in r.conversation.messages
                                                      for c in t.tool_calls))
    assert asked == len(sent) - 2 or sent[asked].conversation.pending_tool_results()  # no request in between
    assert "still checking" in heard
    transcript = lines(stack, call_id)
    assert ("system", "Question for you: They offer Tuesday at 3 pm. Accept? (Yes / No)") in transcript
    assert ("owner", "Only if it is after 4 pm") in transcript
    assert actions(stack, call_id, "owner_answer")[0]["answer"] == "Only if it is after 4 pm"
    assert call.status == "completed" and not [s for s in call.next_steps if "open question" in s]


@pytest.mark.parametrize("llm", ["openai", "anthropic"])
async def test_ask_owner_timeout_promises_a_call_back_and_leaves_a_next_step(call_stack, llm: str) -> None:  # type: ignore[no-untyped-def]
    async with call_stack(brain=owner_brain(), llm=llm, ask_owner_timeout_s=12, ask_owner_keepalive_s=5,
                          **FAST) as stack:
        stack.network.attach(CLINIC, clinic())
        call_id = await stack.place_call(CLINIC, TASK)
        call = await stack.wait_end(call_id, timeout_s=30)
        phone = stack.phone_call(call_id)
    heard = phone.log.heard_text().lower()
    assert "still checking" in heard
    assert "someone will call you back about this" in heard
    timeout = actions(stack, call_id, "owner_timeout")
    assert len(timeout) == 1 and timeout[0]["waited_s"] >= 12
    assert "Answer the open question: They offer Tuesday at 3 pm. Accept?" in call.next_steps
    assert any(who == "system" and text.startswith("No answer from you after") for who, text in
               lines(stack, call_id))


async def test_hint_on_a_line_reaches_the_llm_tied_to_it_and_is_never_spoken(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("claims", [
        say("Claims department, this is Rita. How can I help?"),
        wait_for_agent(silence_ms=800),
        say("I see two claims on file for Sam Lee."),
        wait_for_agent(silence_ms=2500, timeout=6000),
        say("So which claim is it about?"),
        wait_for_agent(silence_ms=800),
        say("Got it. Goodbye."),
        wait_for_agent(silence_ms=3000),
    ], ring_ms=500)
    async with call_stack(brain=owner_brain(), **FAST) as stack:
        stack.network.attach(CLINIC, scenario)
        call_id = await stack.place_call(CLINIC, "Ask about Sam's claim.")
        line = await stack.wait_for(lambda: [e for e in stack.of(call_id, events.CALL_TRANSCRIPT)
                                             if "two claims" in e.text], timeout_s=20)
        await stack.bus.publish(events.CALL_COMMAND, events.CallCommand(
            call_id=call_id, kind="hint", ref=str(line[0].seq), text="he means the claim from March"))
        await stack.wait_end(call_id, timeout_s=30)
        phone = stack.phone_call(call_id)
        sent = requests(stack, "openai")
    notes = [t.text for r in sent for t in r.conversation.messages if "Private hint" in t.text]
    assert notes and ('about the line "I see two claims on file for Sam Lee." said by the callee: he means '
                      "the claim from March") in notes[0]
    heard = phone.log.heard_text().lower()
    assert "it's the claim from march" in heard  # the agent used it...
    assert "he means" not in heard and "hint" not in heard  # ...and never read it out
    hint = actions(stack, call_id, "hint")
    assert hint and hint[0]["line"] == "I see two claims on file for Sam Lee."
