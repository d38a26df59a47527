"""Hold for me with recording on (issue 9), end to end on sim/ with the real SDKs: after the join the
callee's leg carries a listen-only `<Start><Stream track="both_tracks">` fork, and the transcript goes on
with the callee's words (track inbound) and the owner's (track outbound: the conference), with no agent
voice and no LLM turn, until the call ends; then the normal end of call (summary, status)."""

from __future__ import annotations

from typing import Any

import pytest

from callserver import bridge
from dialer.demo import OWNER_NUMBER
from shared import events
from shared.models import TranscriptLine
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import hangup, hold, menu, pause, say, wait_for_agent
from tests.callserver.test_e2e_bridge import ANNOUNCEMENT, FAST, PAYER, TASK, actions, brain

QUICK = {**FAST, "speed": 12}


@pytest.fixture(autouse=True)
def _fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "POLL_S", 0.1)


def payer_then_owner() -> Scenario:
    """IVR, a short hold, Dana picks up and is connected; later she gives the reference to the owner."""
    queue = [say("Please hold while I transfer you."), hold(20, 15, ANNOUNCEMENT),
             say("Hi, this is Dana, how can I help?"), wait_for_agent(phrase=r"one moment", timeout=30_000),
             pause(9000), say("Nice to meet you Sam. The reference number is PA-7731."), pause(30_000)]
    return Scenario("payer", [menu("Thank you for calling Acme Health. For prior authorisation, press 1.",
                                   {"1": queue})], ring_ms=500)


def owner_on_phone() -> Scenario:
    return Scenario("owner", [pause(4000), say("Hi Dana, this is Sam Lee speaking."), pause(9000),
                              say("Thanks, I have it. Goodbye."), pause(800), hangup()], ring_ms=1500)


def ended(stack: Any, call_id: int) -> str:
    """The status the call ended with (CallEnded: the row may later take Twilio's own 'completed')."""
    return str(stack.of(call_id, events.CALL_ENDED)[0].status)


async def stored_lines(stack: Any, call_id: int) -> list[tuple[str, str]]:
    from sqlmodel import select

    async with stack.db.session() as s:
        rows = (await s.exec(select(TranscriptLine).where(TranscriptLine.call_id == call_id)
                             .order_by(TranscriptLine.seq))).all()
    return [(r.speaker, r.text) for r in rows]


async def test_recorded_bridge_keeps_transcribing_callee_and_owner(call_stack: Any) -> None:
    scenario = payer_then_owner()
    async with call_stack(brain=brain(), recording_enabled=True, **QUICK) as stack:
        stack.network.attach(PAYER, scenario)
        stack.network.attach(OWNER_NUMBER, owner_on_phone())
        call_id = await stack.place_call(PAYER, TASK, bridge=True)
        stages = lambda: [a["stage"] for a in actions(stack, call_id, "bridge")]  # noqa: E731
        await stack.wait_for(lambda: "transcribing" in stages(), timeout_s=40)
        # The owner is on the call: "say" from the chat is refused (the agent has no voice any more).
        await stack.bus.publish(events.CALL_COMMAND, events.CallCommand(call_id=call_id, kind="say",
                                                                        text="Please hold the line."))
        call = await stack.wait_end(call_id, timeout_s=60)
        phone = stack.phone_call(call_id)
        lines = [(e.speaker, e.text) for e in stack.of(call_id, events.CALL_TRANSCRIPT)]
        stored = await stored_lines(stack, call_id)
    assert [a["command"] for a in actions(stack, call_id, "command_failed")] == ["say"]
    assert "please hold the line" not in phone.log.heard_text().lower()
    stages = [a["stage"] for a in actions(stack, call_id, "bridge")]
    assert stages[:3] == ["ringing", "joined", "transcribing"]
    joined_at = next(i for i, (who, text) in enumerate(lines) if who == "agent" and "connect you" in text)
    after = lines[joined_at + 1:]
    # Both sides of the bridged conversation are in the live transcript, each under its own speaker.
    owner_words = " ".join(t for who, t in after if who == "owner").lower()
    assert "this is sam lee speaking" in owner_words and "thanks, i have it" in owner_words
    assert any(who == "callee" and "PA-7731" in t for who, t in after)
    # ... and stored with the call, like every other line.
    assert ("owner", "Thanks, I have it. Goodbye.") in [(w, t) for w, t in stored]
    # The agent stepped out: no LLM turn answered the reference number, and nothing of ours was played.
    assert not [t for who, t in after if who == "agent"]
    assert "noted" not in phone.log.heard_text().lower()
    # The phone network saw a listen-only fork of both tracks on the callee's leg, used correctly.
    forks = [r for r in phone.log.streams if r.get("unidirectional")]
    assert len(forks) == 1 and forks[0]["tracks"] == ["inbound", "outbound"]
    assert forks[0]["media_in"] == 0 and forks[0]["end_reason"] == "call ended"
    assert not [e for e in phone.log.errors if e[1] == 31924]
    # The call ends when the owner hangs up (endConferenceOnExit), with the usual end-of-call work.
    assert ended(stack, call_id) == "transferred" and "bridged" in call.end_reason  # handed over
    assert call.outcome and call.ended_at is not None and call.duration_s


async def test_without_recording_the_agent_leaves_at_the_join(call_stack: Any) -> None:
    scenario = payer_then_owner()
    async with call_stack(brain=brain(), recording_enabled=False, **QUICK) as stack:
        stack.network.attach(PAYER, scenario)
        stack.network.attach(OWNER_NUMBER, owner_on_phone())
        call_id = await stack.place_call(PAYER, TASK, bridge=True)
        call = await stack.wait_end(call_id, timeout_s=60)
        phone = stack.phone_call(call_id)
        lines = [(e.speaker, e.text) for e in stack.of(call_id, events.CALL_TRANSCRIPT)]
    # Nobody consented to a recording: no fork, no owner words, the session ended at the join.
    assert not [r for r in phone.log.streams if r.get("unidirectional")]
    assert not [t for who, t in lines if who == "owner"]
    assert ended(stack, call_id) == "transferred" and "bridged" in call.end_reason
