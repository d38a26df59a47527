"""Hard calls end to end (issue 7), real SDKs against sim/: IVR menus by keypad (in-band tones and REST
<Play digits>), keypad entry of an ID, a long hold compressed by the phone network's speed factor, voicemail
after the beep, the hold limit, and the prior-authorisation call through IVR, hold and a person."""

from __future__ import annotations

from typing import Any

import pytest

from shared import events
from sim.llm_script import Rule, ScriptedBrain, ToolCall
from sim.scenarios import library
from sim.scenarios.engine import Scenario
from sim.scenarios.library import voicemail_box
from sim.scenarios.steps import (
    collect_digits,
    hangup,
    hold,
    menu,
    pause,
    say,
    voicemail,
    wait_for_agent,
)

FAST = {"llm_ttft_s": 0.03, "llm_tokens_per_s": 400}
NUMBER = "+12125550140"
MEMBER = "W123456789"
BYE = [ToolCall("end_call", {"reason": "task done"})]


def hard_brain() -> ScriptedBrain:
    """The agent's scripted LLM: keys for menus, words for people."""
    return ScriptedBrain([
        Rule(user=r"for prior authori[sz]ation, press (\d)", priority=5,
             calls=[ToolCall("press_digits", {"digits": "{1}"})]),
        Rule(user=r"new prior authori[sz]ation request, press (\d)", priority=6,
             calls=[ToolCall("press_digits", {"digits": "{1}"})]),
        Rule(user=r"member id,? followed by the pound", priority=7,
             calls=[ToolCall("press_digits", {"digits": "123456789#"})]),
        Rule(user=r"one moment\W+let me transfer", calls=[ToolCall("wait_on_hold", {"reason": "transfer"})],
             priority=4),
        Rule(user=r"member id", say="The member ID is W 1 2 3 4 5 6 7 8 9.", priority=3),
        Rule(user=r"how can i help", priority=3,
             say="Hi, I'm calling for Sam Lee about a prior authorisation."),
        Rule(user=r"date of birth", say="March 4th, 1980.", priority=3),
        Rule(user=r"reference number is ([A-Z]{2}-?\s?\d+)", priority=8,
             say="Thank you, I've noted reference {1}. Goodbye!",
             calls=[ToolCall("note_fact", {"label": "reference number", "value": "{1}"}), *BYE]),
        Rule(user=r"goodbye|bye", say="Goodbye!", calls=BYE, priority=5),
    ], default="")


def llm_requests(stack: Any) -> list[Any]:
    return [r for r in stack.emulators.openai.requests if r.conversation.tools]  # summaries offer no tools


def actions(stack: Any, call_id: int, kind: str) -> list[dict[str, Any]]:
    return [e.detail for e in stack.of(call_id, events.CALL_ACTION) if e.kind == kind]


def two_level_ivr() -> Scenario:
    department = [say("You have reached the prior authorisation department. Goodbye."), hangup()]
    wrong = [say("This is eligibility. Goodbye."), hangup()]
    second = menu("For a new prior authorisation request, press 1. To check an existing request, press 2.",
                  {"1": department, "2": wrong})
    first = menu("Thank you for calling Acme Health. For eligibility, press 1. For prior authorisation, "
                 "press 2.", {"1": wrong, "2": [second]})
    return Scenario("two_level_ivr", [first], ring_ms=500)


@pytest.mark.parametrize("mode", ["inband", "rest"])
async def test_two_level_ivr_navigated_by_digits(call_stack, mode: str) -> None:  # type: ignore[no-untyped-def]
    async with call_stack(brain=hard_brain(), speed=8, dtmf_mode=mode, **FAST) as stack:
        stack.network.attach(NUMBER, two_level_ivr())
        call_id = await stack.place_call(NUMBER, "Open a prior authorisation request.")
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
        requests = llm_requests(stack)
    # The emulator detected exactly these keys, the way the mode sends them.
    source = "inband" if mode == "inband" else "play"
    assert [(d, src) for _, d, src in phone.log.digits] == [("2", source), ("1", source)]
    assert any("menu choice 1" in text for _, who, text in phone.callee.transcript if who == "keys")
    assert phone.callee.transcript[-2][2].startswith("You have reached the prior authorisation department")
    # Each menu was heard whole (UtteranceEnd, not the first speech_final) and answered once, silently.
    assert len(requests) == 2
    assert "press 2" in requests[0].conversation.pending_user_text()
    assert "To check an existing request, press 2" in requests[1].conversation.pending_user_text()
    assert phone.log.heard == [] and phone.log.error_codes() == []
    # REST: the TwiML was replaced after each key, a new stream re-attached to the same session each
    # time, with its history (the second request saw the first key press) and one STT connection.
    if mode == "rest":
        assert len(phone.log.streams) == 3
        first_keys = [c.arguments for t in requests[1].conversation.messages for c in t.tool_calls]
        assert first_keys == [{"digits": "2"}]
        assert len(stack.emulators.deepgram.sessions) == 1
    else:
        assert len(phone.log.streams) == 1
    assert call.status == "completed"
    assert [a["digits"] for a in actions(stack, call_id, "press_digits")] == ["2", "1"]


async def test_member_id_entered_on_the_keypad(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("keypad", [
        collect_digits("Please enter your member ID, followed by the pound key.", expect="123456789"),
        say("Thank you, your member ID is verified. Goodbye."), hangup()], ring_ms=500)
    async with call_stack(brain=hard_brain(), speed=8, **FAST) as stack:
        stack.network.attach(NUMBER, scenario)
        call_id = await stack.place_call(NUMBER, f"Check the status for member {MEMBER}.")
        await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
    assert phone.callee.collected == ["123456789"]
    assert "".join(d for _, d, _ in phone.log.digits) == "123456789#"


def words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split()]


def after(transcript: list[tuple[float, str, str]], text: str) -> list[tuple[str, str]]:
    """The callee's log (who, text) from the entry starting with ``text`` on."""
    start = next(i for i, (_, _, t) in enumerate(transcript) if t.startswith(text))
    return [(who, t) for _, who, t in transcript[start:]]


ANNOUNCEMENT = ("Thank you for holding. Your call is important to us. A representative will be with you "
                "shortly.")


async def test_ten_minutes_of_hold_without_the_llm_then_a_reply_within_one_turn(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("queue", [
        pause(1500), say("Please hold while I transfer you to the prior authorisation team."),
        hold(600, 30, ANNOUNCEMENT),
        say("Hi, this is Dana, how can I help?"),
        # 10 s of call time is 200 ms at 50x: longer than our real-time gap between two TTS phrases; the
        # long timeouts leave room for a CPU-bound sim falling behind its own clock.
        wait_for_agent(silence_ms=10_000, timeout=300_000),
        say("Okay, I will look into it. Goodbye."),
        wait_for_agent(silence_ms=10_000, timeout=300_000),
        hangup()], ring_ms=500)
    async with call_stack(brain=hard_brain(), speed=50, **FAST) as stack:
        stack.network.attach(NUMBER, scenario)
        call_id = await stack.place_call(NUMBER, "Ask about a prior authorisation.")
        # ~15 s on an idle machine (CPU-bound at 50x); the margin is for a loaded CI box.
        call = await stack.wait_end(call_id, timeout_s=45)
        phone = stack.phone_call(call_id)
        requests = llm_requests(stack)
    on_hold, off_hold = actions(stack, call_id, "on_hold"), actions(stack, call_id, "off_hold")
    assert len(on_hold) == 1 and on_hold[0]["by"] == "announcement" and on_hold[0]["since"]
    assert len(off_hold) == 1 and off_hold[0]["by"] == "person"
    # The network held the call for 600 s of its clock; we count the audio actually delivered, which a
    # CPU-bound sim at 50x may deliver a little short of that.
    marks = ("hold 600", "Hi, this is Dana")
    held_ms = [t for t, _, text in phone.callee.transcript if text.startswith(marks)]
    assert held_ms[1] - held_ms[0] >= 600_000
    assert off_hold[0]["held_s"] >= 480 and off_hold[0]["recordings_skipped"] >= 10
    # No LLM request from the first words to the person: the 20 announcements never reached it.
    resumed = next(e.at for e in stack.of(call_id, events.CALL_ACTION) if e.kind == "off_hold").timestamp()
    assert requests and all(r.at >= resumed for r in requests)
    first = requests[0].conversation
    assert "Dana" in first.pending_user_text()
    assert any("on hold for" in str(m["content"]) for m in requests[0].body["messages"])
    assert not any("important to us" in t.text for t in first.messages)
    # The person got the agent's answer as the very next turn, before saying anything else.
    turns = after(phone.callee.transcript, "Hi, this is Dana")
    assert turns[0] == ("callee", "Hi, this is Dana, how can I help?")
    assert turns[1][0] == "agent" and turns[1][1].startswith("Hi, I'm calling for Sam Lee")
    assert len(requests) == 2  # Dana's turn, then the goodbye
    # Music is not dead air; the call ended normally after the goodbye.
    assert [a for a in actions(stack, call_id, "silence") if a["on_hold"]] == []
    assert not actions(stack, call_id, "limit_reached")
    assert call.end_reason == "task done"


async def test_max_hold_time_reached_ends_the_call(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("endless_queue", [
        pause(1500), say("One moment, let me transfer you."), hold(600, 20, ANNOUNCEMENT),
        say("Hi, this is Dana."), hangup()], ring_ms=500)
    async with call_stack(brain=hard_brain(), speed=30, max_hold_minutes=1, **FAST) as stack:
        stack.network.attach(NUMBER, scenario)
        call_id = await stack.place_call(NUMBER, "Ask about a prior authorisation.")
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
        requests = llm_requests(stack)
    # The agent itself judged it was put on hold (wait_on_hold tool), once; no LLM request after that.
    assert len(requests) == 1 and [c.name for c in requests[0].reply.tool_calls] == ["wait_on_hold"]
    assert actions(stack, call_id, "on_hold")[0]["by"] == "agent"
    kinds = [(e.kind, e.detail.get("limit")) for e in stack.of(call_id, events.CALL_ACTION)
             if e.kind.startswith("limit_")]
    assert kinds == [("limit_warning", "hold"), ("limit_reached", "hold")]
    assert call.end_reason == "max hold time reached"
    assert 58 <= actions(stack, call_id, "limit_reached")[0]["held_s"] <= 63
    assert "Dana" not in phone.log.said_text()  # hung up while still in the queue


async def test_voicemail_left_after_the_beep_on_amd(call_stack) -> None:  # type: ignore[no-untyped-def]
    async with call_stack(brain=hard_brain(), speed=8, **FAST) as stack:
        stack.network.attach(NUMBER, voicemail_box())
        call_id = await stack.place_call(NUMBER, "Ask Sam to call back about Tuesday's appointment.")
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
        requests = llm_requests(stack)
    left = actions(stack, call_id, "voicemail_left")
    assert len(left) == 1 and "Tuesday's appointment" in left[0]["message"]
    # The box recorded the whole message: nothing was spoken over the greeting or before the beep.
    assert words(phone.callee.voicemail_message or "") == words(left[0]["message"])
    assert requests == []  # deterministic: no LLM turn for a machine
    assert call.answered_by == "machine_end_beep" and call.end_reason == "voicemail left"
    assert call.outcome == "voicemail" and call.summary.startswith("Voicemail left")
    assert left[0]["message"] in call.summary


async def test_voicemail_by_our_own_ear_when_amd_says_human(call_stack) -> None:  # type: ignore[no-untyped-def]
    greeting = ("Hi, this is the Lee family. We can't take your call right now. Please leave a message after "
                "the tone.")
    box = Scenario("box_amd_wrong", [voicemail(greeting)], answered_by="human", ring_ms=500, amd_ms=300)
    message = "Hi Sam, it's Alex for Sam Lee. Please call back about Tuesday. Thanks!"
    async with call_stack(brain=hard_brain(), speed=8, **FAST) as stack:
        stack.network.attach(NUMBER, box)
        call_id = await stack.place_call(NUMBER, "Ask Sam to call back.", voicemail_message=message)
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
    assert call.answered_by == "human"
    stages = [a.get("stage") for a in actions(stack, call_id, "voicemail")]
    assert stages == ["greeting heard", "leaving message"]
    assert words(phone.callee.voicemail_message or "") == words(message)
    assert call.outcome == "voicemail" and message in call.summary


async def test_prior_authorisation_through_ivr_hold_and_a_person(call_stack) -> None:  # type: ignore[no-untyped-def]
    async with call_stack(brain=hard_brain(), speed=15, **FAST) as stack:
        stack.network.attach(NUMBER, library.prior_auth(hold_s=150, announcement_every_s=30))
        call_id = await stack.place_call(
            NUMBER, f"Request a new prior authorisation for member {MEMBER}, born March 4 1980, and get the "
            "reference number.")
        call = await stack.wait_end(call_id, timeout_s=25)
        phone = stack.phone_call(call_id)
    assert "".join(d for _, d, _ in phone.log.digits) == "21"
    assert len(actions(stack, call_id, "on_hold")) == 1 and len(actions(stack, call_id, "off_hold")) == 1
    assert {"label": "reference number", "value": "PA-48213"} in call.facts
    assert "PA-48213" in call.summary and call.outcome == "achieved"
    heard = phone.log.heard_text()
    assert "1980" in heard and "PA-48213" in heard.replace(" ", "")


async def test_call_time_limit_warns_then_the_agent_ends_politely(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("goes_quiet", [
        pause(1500), say("Hello, who is this?"), wait_for_agent(silence_ms=2000, timeout=20000),
        pause(120_000), hangup()], ring_ms=500)
    async with call_stack(brain=hard_brain(), speed=20, max_call_minutes=1, **FAST) as stack:
        stack.network.attach(NUMBER, scenario)
        call_id = await stack.place_call(NUMBER, "Ask about a prior authorisation.")
        call = await stack.wait_end(call_id, timeout_s=20)
        phone = stack.phone_call(call_id)
    limits = [(e.kind, e.detail.get("limit")) for e in stack.of(call_id, events.CALL_ACTION)
              if e.kind.startswith("limit_")]
    assert limits == [("limit_warning", "call"), ("limit_reached", "call")]
    assert call.end_reason == "max call time reached"
    # The goodbye was heard in full before the hang-up, inside Twilio's own TimeLimit (60 s).
    assert "have to hang up now" in phone.log.heard_text() and phone.log.heard[-1].word.startswith("Goodbye")
    assert phone.end_reason != "time limit" and (phone.duration_s() or 0) <= 60
    # The quiet line was reported as dead air (30 s), and did not end the call by itself.
    assert [a["seconds"] for a in actions(stack, call_id, "silence")] == [30]


async def test_keys_pressed_by_the_callee_reach_the_agent(call_stack) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario("keys", [
        pause(1500), say("Hello?"), pause(4000), say("Did you get the key I pressed?"),
        wait_for_agent(silence_ms=800, timeout=20000), hangup()], ring_ms=500)
    async with call_stack(brain=hard_brain(), speed=8, **FAST) as stack:
        stack.network.attach(NUMBER, scenario)
        call_id = await stack.place_call(NUMBER, "Confirm the appointment.")
        lines = lambda: stack.of(call_id, events.CALL_TRANSCRIPT)  # noqa: E731
        await stack.wait_for(lambda: any(e.text == "Hello?" for e in lines()))
        await stack.phone_call(call_id).line.key("5")
        await stack.wait_end(call_id, timeout_s=20)
        requests = llm_requests(stack)
    assert len(actions(stack, call_id, "dtmf_received")) == 1
    last = requests[-1].body["messages"]
    assert any("pressed the key 5" in str(m["content"]) for m in last)
    assert "Did you get the key I pressed?" in str(last[-1]["content"])
