""""Ring me when a human answers" from the chat (issue 9), end to end: the real python-telegram-bot on
sim/'s Telegram, the real call server on sim/ (`call_stack`), the owner's own phone as a second sim leg.
The toggle on the confirmation card (with recording on: the owner's words keep coming into the chat), and
the live card's button pressed on hold (rings for the person after the hold) or while a person talks
(rings at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.app import build_application
from bot.runner import BotRunner
from callserver import bridge
from dialer.demo import OWNER_ID, OWNER_NUMBER, CallStack
from shared import events
from shared.models import Call, User
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import hangup, hold, menu, pause, say, wait_for_agent
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_chat import ChatMessage, EmulatedUser
from tests.callserver.test_e2e_bridge import ANNOUNCEMENT, FAST, PAYER, TASK, brain

RING_ME = "📲 Ring me when a human answers"
QUICK = {**FAST, "speed": 12}


@pytest.fixture(autouse=True)
def _fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "POLL_S", 0.1)


@asynccontextmanager
async def chat(call_stack: Any, payer: Scenario,
               **settings: Any) -> AsyncIterator[tuple[CallStack, EmulatedUser]]:
    emu = TelegramEmulator()
    async with serve(emu.app) as tg_url, call_stack(brain=brain(), telegram_bot_token=emu.token,
                                                    telegram_api_base_url=tg_url, **QUICK,
                                                    **settings) as stack:
        stack.network.attach(PAYER, payer)
        stack.network.attach(OWNER_NUMBER, owner())
        app = build_application(stack.settings, db=stack.db, bus=stack.bus, telephony=stack.telephony,
                                calls=stack.calls, min_interval_s=0.3, hangup_grace_s=3.0)
        async with BotRunner(app, poll_timeout_s=1):
            yield stack, emu.user(id=OWNER_ID, first_name="Sam")


def owner() -> Scenario:
    return Scenario("owner", [pause(4000), say("Hi Dana, this is Sam Lee speaking."), pause(6000),
                              say("Thanks, I have it. Goodbye."), pause(800), hangup()], ring_ms=1500)


def payer_on_hold(hold_s: float = 20) -> Scenario:
    queue = [say("Please hold while I transfer you."), hold(hold_s, 15, ANNOUNCEMENT),
             say("Hi, this is Dana, how can I help?"), wait_for_agent(phrase=r"one moment", timeout=30_000),
             pause(7000), say("Nice to meet you Sam. The reference number is PA-7731."), pause(30_000)]
    return Scenario("payer", [menu("Thank you for calling Acme Health. For prior authorisation, press 1.",
                                   {"1": queue})], ring_ms=500)


async def set_callback(stack: CallStack, number: str) -> None:
    async with stack.db.session() as s:
        user = await s.get(User, OWNER_ID)
        assert user is not None
        user.callback_number = number
        s.add(user)
        await s.commit()


async def only_call(stack: CallStack) -> Call:
    async with stack.db.session() as s:
        call = await s.get(Call, 1)
    assert call is not None
    return call


def ended(stack: CallStack) -> str:
    """The status the call ended with (CallEnded: the row may later take Twilio's own 'completed')."""
    return str(stack.of(1, events.CALL_ENDED)[0].status)


async def confirm(user: EmulatedUser) -> ChatMessage:
    await user.send(f"/call {PAYER} {TASK}")
    return await user.wait_for("Ready to call")


async def test_toggle_on_the_confirmation_card_then_owner_talks_on_the_record(call_stack: Any) -> None:
    async with chat(call_stack, payer_on_hold(), recording_enabled=True) as (stack, user):
        card = await confirm(user)
        assert RING_ME in card.labels
        # Without the owner's own number there is nobody to ring: a clear alert, nothing changes.
        await set_callback(stack, "")
        alert = await (await user.press(card, RING_ME)).wait_answered()
        assert alert["show_alert"] and "/profile callback" in alert["text"]
        await set_callback(stack, OWNER_NUMBER)
        await (await user.press(card, RING_ME)).wait_answered()
        card = await user.wait_for(lambda m: m.id == card.id and "Hold for me" in m.text)
        assert "✅ Ring me when a human answers" in card.labels
        # Pressed twice it is off again, a third time on: the card always says what will happen.
        await (await user.press(card, "✅ Ring me when a human answers")).wait_answered()
        card = await user.wait_for(lambda m: m.id == card.id and "Hold for me" not in m.text)
        await (await user.press(card, RING_ME)).wait_answered()
        card = await user.wait_for(lambda m: m.id == card.id and "Hold for me" in m.text)
        await (await user.press(card, "📞 Call")).wait_answered()
        await user.wait_for("Human on the line, ringing you", timeout=30)
        await user.wait_for("You are connected", timeout=20)
        await user.wait_for("Recording is on", timeout=10)
        await user.wait_for("You: Hi Dana, this is Sam Lee speaking", timeout=20)
        await user.wait_for("Callee: Nice to meet you Sam. The reference number is PA-7731", timeout=20)
        await user.wait_for(r"Call #\d+ to .*:", timeout=30)
        call = await only_call(stack)
    assert call.options.get("bridge") is True and "bridged" in call.end_reason


async def test_live_button_on_hold_rings_for_the_person_after_the_hold(call_stack: Any) -> None:
    async with chat(call_stack, payer_on_hold(hold_s=45)) as (stack, user):
        card = await confirm(user)
        await (await user.press(card, "📞 Call")).wait_answered()
        card = await user.wait_for(lambda m: m.id == card.id and "On hold" in m.text, timeout=30)
        answer = await (await user.press(card, RING_ME)).wait_answered()
        assert "ring you" in answer["text"]
        armed = await user.wait_for("I'll ring you when a human answers", timeout=10)
        # The button is gone once it is on; ringing waits for the person who picks up after the hold.
        await user.wait_for(lambda m: m.id == card.id and RING_ME not in m.labels, timeout=10)
        ringing = await user.wait_for("Human on the line, ringing you", timeout=30, after=armed)
        picked_up = await user.wait_for("Callee: Hi, this is Dana", timeout=5)
        assert picked_up.id <= ringing.id
        await user.wait_for("You are connected", timeout=20)
        call = await stack.wait_end(1, timeout_s=30)
        phone = stack.phone_call(1)
    heard = phone.log.heard_text().lower()
    assert "let me connect you" in heard and "this is sam lee speaking" in heard
    assert ended(stack) == "transferred" and "bridged" in call.end_reason


async def test_live_button_with_a_person_on_the_line_rings_at_once(call_stack: Any) -> None:
    payer = Scenario("dana", [say("Acme Health, this is Dana, how can I help?"),
                              wait_for_agent(silence_ms=800), pause(60_000)], ring_ms=500)
    async with chat(call_stack, payer) as (stack, user):
        card = await confirm(user)
        await (await user.press(card, "📞 Call")).wait_answered()
        await user.wait_for("Agent: Hi, I'm calling for Sam Lee", timeout=30)
        await (await user.press(card, RING_ME)).wait_answered()
        await user.wait_for("Human on the line, ringing you", timeout=10)
        await user.wait_for("You are connected", timeout=20)
        call = await stack.wait_end(1, timeout_s=30)
        phone = stack.phone_call(1)
        legs = [c for c in stack.network.calls.values() if c.to == OWNER_NUMBER]
    heard = phone.log.heard_text().lower()
    # The agent's sentence was finished, then the connecting line, then the owner's voice.
    assert not phone.log.clears
    order = [heard.index(words) for words in ("calling for sam lee", "let me connect you", "this is sam lee")]
    assert order == sorted(order)
    assert len(legs) == 1 and ended(stack) == "transferred" and "bridged" in call.end_reason
