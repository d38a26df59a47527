"""End to end from the chat: the real python-telegram-bot on sim/'s Telegram, the real call server and
pipeline on sim/ (`call_stack`): /call -> confirmation -> live card and transcript -> an instruction
typed mid-call changes what the agent does -> [Hang up] -> summary with the scenario's reference number;
and [Transfer to me].

`DIALER_WRITE_CHAT=1` also saves the chat of the hang-up test, as the user saw it, to
docs/chat-transcript.md (the README's example).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.app import build_application
from bot.runner import BotRunner
from dialer.demo import OWNER_ID, OWNER_NUMBER, CallStack
from shared.models import Call
from sim.llm_script import Rule, ScriptedBrain, ToolCall
from sim.scenarios.engine import Scenario
from sim.scenarios.steps import pause, say, wait_for_agent
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_chat import EmulatedUser
from tests.bot.chat_markdown import chat_markdown

DANA = "+12125550150"
TASK = "Get the reference number of the prior authorisation for member W123"
FAST = {"speed": 8, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}
REPO = Path(__file__).resolve().parents[2]


def dana() -> Scenario:
    """A payer's agent who gives a reference number, then stays on the line (checking something)."""
    return Scenario("dana", [
        say("Acme Health, this is Dana. How can I help?"),
        wait_for_agent(silence_ms=800),
        say("Your reference number is PA-48213. Anything else?"),
        wait_for_agent(silence_ms=800),
        say("Okay, let me check something on my side."),
        pause(600_000),
    ], ring_ms=1000)


def brain() -> ScriptedBrain:
    """The agent's LLM: asks for the reference, notes it, and asks for the fax number only when the
    owner says so mid-call (the owner's note reaches it as pending input)."""
    return ScriptedBrain([
        Rule(user=r"how can I help", priority=2,
             say="Hi Dana, I'm Alex, an AI assistant calling for Sam Lee about member W 1 2 3. "
                 "Could you give me the reference number of the prior authorisation?"),
        Rule(user=r"reference number is ([A-Z]{2}-\d+)", priority=5, say="Thank you, I've noted {1}.",
             calls=[ToolCall("note_fact", {"label": "reference number", "value": "{1}"})]),
        Rule(user=r"fax number", priority=6,
             say="One more thing: could you give me your fax number, please?"),
    ], default="")


@asynccontextmanager
async def chat_and_call(call_stack: Any) -> AsyncIterator[tuple[CallStack, EmulatedUser]]:
    emu = TelegramEmulator()
    async with serve(emu.app) as tg_url, call_stack(brain=brain(), telegram_bot_token=emu.token,
                                                    telegram_api_base_url=tg_url, **FAST) as stack:
        stack.network.attach(DANA, dana())
        app = build_application(stack.settings, db=stack.db, bus=stack.bus, telephony=stack.telephony,
                                calls=stack.calls, min_interval_s=1.0, hangup_grace_s=3.0)
        async with BotRunner(app, poll_timeout_s=1):
            yield stack, emu.user(id=OWNER_ID, first_name="Sam")


async def start_call(user: EmulatedUser) -> int:
    await user.send(f"/call {DANA} {TASK}")
    confirm = await user.wait_for("Ready to call")
    assert "Task: " + TASK in confirm.text
    await (await user.press(confirm, "📞 Call")).wait_answered()
    return confirm.id


async def call_row(stack: CallStack, card_id: int) -> Call:
    async with stack.db.session() as s:
        return (await s.exec(select(Call).where(Call.card_message_id == card_id))).one()


async def test_call_watch_instruct_hang_up_and_summary(call_stack: Any) -> None:
    async with chat_and_call(call_stack) as (stack, user):
        card_id = await start_call(user)
        await user.wait_for(lambda m: m.id == card_id and "answered by a person" in m.text, timeout=15)
        await user.wait_for("Noted: reference number: PA-48213", timeout=15)
        await user.wait_for("let me check something", timeout=15)
        typed = await user.send("Ask them for their fax number too")
        await user.wait_for("Passed to the agent", after=typed)
        await user.wait_for("Agent: One more thing: could you give me your fax number", timeout=15)
        await user.press(card_id, "☎️ Hang up")
        summary = await user.wait_for(r"Call #\d+ to .*:", timeout=20, after=typed)
        card = await user.wait_for(lambda m: m.id == card_id and "Ended" in m.text, timeout=10)
        call = await call_row(stack, card_id)

        transcript = "\n".join(m.text for m in user.chat(from_bot=True) if "Agent:" in m.text
                               or "Callee:" in m.text)
        order = ["this is Dana. How can I help", "Agent: Hi Dana", "Callee: Your reference number",
                 "Agent: Thank you, I've noted PA-48213", "Callee: Okay, let me check",
                 "Agent: One more thing"]
        positions = [transcript.find(piece) for piece in order]
        assert -1 not in positions and positions == sorted(positions), (positions, transcript)
        assert "reference number: PA-48213" in summary.text
        assert "duration" in summary.text and "📄 Full transcript" in summary.labels
        assert card.buttons == [] and call.status == "completed"
        assert "hung up by the owner" in call.end_reason
        # The callee really heard the question the owner's note asked for.
        heard = " ".join(w.word for w in stack.phone_call(call.id or 0).log.heard).lower()
        assert "fax" in heard
        await (await user.press(summary, "📄 Full transcript")).wait_answered()
        document = await user.wait_for(lambda m: m.file is not None)
        assert document.file is not None and b"PA-48213" in document.file.data
        if os.environ.get("DIALER_WRITE_CHAT"):
            (REPO / "docs").mkdir(exist_ok=True)
            (REPO / "docs" / "chat-transcript.md").write_text(chat_markdown(user, TASK))


async def test_transfer_to_me_from_the_card(call_stack: Any) -> None:
    async with chat_and_call(call_stack) as (stack, user):
        card_id = await start_call(user)
        await user.wait_for("let me check something", timeout=15)
        await user.press(card_id, "↪️ Transfer to me")
        await user.wait_for(re.escape("Transferring call #") + r"\d+ to \+1 212-555-0177", timeout=5)
        card = await user.wait_for(lambda m: m.id == card_id and "Ended" in m.text, timeout=15)
        assert "transferred" in card.text.lower()
        call = await call_row(stack, card_id)
        phone = stack.phone_call(call.id or 0)
        assert "transferring" in " ".join(w.word for w in phone.log.heard).lower()
        assert [leg.number for leg in phone.log.dialed] == [OWNER_NUMBER]


async def test_transfer_pressed_while_the_agent_talks(call_stack: Any) -> None:
    """Pressed as soon as the callee hears the agent: the transfer happens and the card still ends."""
    async with chat_and_call(call_stack) as (stack, user):
        card_id = await start_call(user)

        async def agent_heard() -> bool:
            async with stack.db.session() as s:
                call = (await s.exec(select(Call).where(Call.card_message_id == card_id))).first()
            if call is None or call.id is None or not call.twilio_sid:
                return False
            try:
                return bool(stack.phone_call(call.id).log.heard)
            except (KeyError, LookupError):
                return False

        for _ in range(400):
            if await agent_heard():
                break
            await asyncio.sleep(0.05)
        await user.press(card_id, "↪️ Transfer to me")
        card = await user.wait_for(lambda m: m.id == card_id and "Ended" in m.text, timeout=30)
        assert "transferred" in card.text.lower()
        call = await call_row(stack, card_id)
        assert [leg.number for leg in stack.phone_call(call.id or 0).log.dialed] == [OWNER_NUMBER]
