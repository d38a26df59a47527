"""Owner in the loop from the chat (issue 9), end to end: the real python-telegram-bot on sim/'s Telegram,
the real call server on sim/ (`call_stack`). The agent's question is answered by a button and by a reply
in the owner's own words; a reply to a transcript line reaches the agent as a private hint on that line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.app import build_application
from bot.runner import BotRunner
from dialer.demo import OWNER_ID, CallStack
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import say, wait_for_agent
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_chat import EmulatedUser
from tests.callserver.test_e2e_owner import CLINIC, FAST, TASK, clinic, owner_brain


@asynccontextmanager
async def chat(call_stack: Any, scenario: Scenario) -> AsyncIterator[tuple[CallStack, EmulatedUser]]:
    emu = TelegramEmulator()
    async with serve(emu.app) as tg_url, call_stack(brain=owner_brain(), telegram_bot_token=emu.token,
                                                    telegram_api_base_url=tg_url, ask_owner_keepalive_s=6,
                                                    **FAST) as stack:
        stack.network.attach(CLINIC, scenario)
        app = build_application(stack.settings, db=stack.db, bus=stack.bus, telephony=stack.telephony,
                                calls=stack.calls, min_interval_s=0.3, hangup_grace_s=3.0)
        async with BotRunner(app, poll_timeout_s=1):
            yield stack, emu.user(id=OWNER_ID, first_name="Sam")


async def start_call(user: EmulatedUser, task: str = TASK) -> None:
    await user.send(f"/call {CLINIC} {task}")
    confirm = await user.wait_for("Ready to call")
    await (await user.press(confirm, "📞 Call")).wait_answered()


def heard(stack: CallStack) -> str:
    call = next(iter(stack.network.calls.values()))
    return str(call.log.heard_text()).lower()


async def test_question_answered_by_a_button(call_stack: Any) -> None:
    async with chat(call_stack, clinic()) as (stack, user):
        await start_call(user)
        question = await user.wait_for("The agent asks you", timeout=20)
        assert "They offer Tuesday at 3 pm. Accept?" in question.text
        assert question.labels == ["Yes", "No"] and "Reply to this message" in question.text
        await (await user.press(question, "Yes")).wait_answered()
        await user.wait_for("Agent: Thank you for holding. Tuesday at 3 pm works", timeout=20)
        closed = await user.wait_for(lambda m: m.id == question.id and "Answered: Yes" in m.text, timeout=10)
        assert closed.buttons == []
        summary = await user.wait_for(r"Call #\d+ to .*:", timeout=30, after=question)
        assert "You: Yes" in "\n".join(m.text for m in user.chat(from_bot=True))
        assert "please book it" in heard(stack)
        assert "duration" in summary.text


async def test_question_answered_in_own_words_by_reply(call_stack: Any) -> None:
    async with chat(call_stack, clinic()) as (stack, user):
        await start_call(user)
        question = await user.wait_for("The agent asks you", timeout=20)
        mine = await user.reply_to(question, "Only if it is after 4 pm")
        await user.wait_for("Your answer goes to the agent", after=mine)
        await user.wait_for("Agent: Thank you for holding. Sam says: Only if it is after 4 pm", timeout=20)
        await user.wait_for(lambda m: m.id == question.id and "Answered: Only if" in m.text, timeout=10)
        assert "sam says: only if it is after 4 pm" in heard(stack)


async def test_reply_to_a_line_is_a_private_hint(call_stack: Any) -> None:
    scenario = Scenario("claims", [
        say("Claims department, this is Rita. How can I help?"),
        wait_for_agent(silence_ms=800),
        say("I see two claims on file for Sam Lee."),
        wait_for_agent(silence_ms=6000, timeout=40_000),
        say("So which claim is it about?"),
        wait_for_agent(silence_ms=800),
        say("Got it. Goodbye."),
        wait_for_agent(silence_ms=3000),
    ], ring_ms=500)
    async with chat(call_stack, scenario) as (stack, user):
        await start_call(user, "Ask about Sam's claim.")
        line = await user.wait_for("Callee: I see two claims", timeout=20)
        mine = await user.reply_to(line, "he means the claim from March")
        await user.wait_for("Private hint for the agent about “I see two claims on file", after=mine)
        await user.wait_for("Agent: It's the claim from March", timeout=20)
        requests = [r for r in stack.emulators.openai.requests if r.conversation.tools]
        notes = [t.text for r in requests for t in r.conversation.messages if "Private hint" in t.text]
        assert 'line "I see two claims on file for Sam Lee." said by the callee: he means' in notes[0]
        assert "he means" not in heard(stack)


async def test_call_with_bridge_flag_stores_the_option(call_stack: Any) -> None:
    from sqlmodel import select

    from shared.models import Call

    async with chat(call_stack, clinic()) as (stack, user):
        await user.send(f"/call {CLINIC} --bridge {TASK}")
        confirm = await user.wait_for("Ready to call")
        assert "Hold for me" in confirm.text and "--bridge" not in confirm.text
        await (await user.press(confirm, "📞 Call")).wait_answered()
        await user.wait_for("The agent asks you", timeout=20)
        async with stack.db.session() as s:
            call = (await s.exec(select(Call))).one()
        assert call.options.get("bridge") is True and call.task == TASK
