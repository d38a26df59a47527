"""Commands and bad input, driven through the Telegram emulator with the real python-telegram-bot."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from shared.models import Call, Contact, User
from shared.prompt import MAX_TASK_CHARS
from tests.bot.conftest import OWNER_ID, STRANGER_ID, BotEnv

CALLEE = "+12125550123"


async def test_command_menu_is_set(bot_env: BotEnv) -> None:
    commands = [c["command"] for c in next(iter(bot_env.emu.commands.values()))]
    assert {"call", "hangup", "transfer", "say", "calls", "transcript", "contacts", "profile",
            "help"} <= set(commands)


async def test_help_lists_every_command_with_an_example(bot_env: BotEnv) -> None:
    await bot_env.user.send("/help")
    reply = await bot_env.user.wait_for("/call <number")
    for command in ("/hangup", "/transfer", "/say", "/calls", "/transcript", "/contacts", "/profile"):
        assert command in reply.text
    assert reply.text.count("e.g.") >= 9


async def test_stranger_is_refused_once_with_their_id(bot_env: BotEnv) -> None:
    stranger = bot_env.emu.user(id=STRANGER_ID, first_name="Eve")
    await stranger.send("/start")
    refusal = await stranger.wait_for("private")
    assert str(STRANGER_ID) in refusal.text
    await stranger.send("/call +12125550123 hello there")
    await stranger.send("hello?")
    await bot_env.user.send("/help")  # the owner's reply proves the stranger's updates were processed
    await bot_env.user.wait_for("/call")
    assert len(stranger.chat(from_bot=True)) == 1
    async with bot_env.db.session() as s:
        assert await s.get(User, STRANGER_ID) is None


async def test_unknown_command_gets_a_helpful_reply(bot_env: BotEnv) -> None:
    await bot_env.user.send("/frobnicate now")
    reply = await bot_env.user.wait_for("I don't know /frobnicate")
    assert "/help" in reply.text


@pytest.mark.parametrize(("text", "reason"), [
    ("/call 12345 ask about the claim", "not a valid phone number"),
    ("/call 911 ask about the claim", "emergency"),
    ("/call +1 900 555 0100 ask about the claim", "premium-rate"),
    ("/call +12125550100 ask about the claim", "own number"),
    (f"/call {CALLEE} " + "x" * (MAX_TASK_CHARS + 5), "too long"),
    ("/call dentist ask about the bill", "no contact named 'dentist'"),
])
async def test_bad_call_requests_are_answered_with_the_reason(bot_env: BotEnv, text: str,
                                                              reason: str) -> None:
    await bot_env.user.send(text)
    reply = await bot_env.user.wait_for("I can't")
    assert reason in reply.text
    async with bot_env.db.session() as s:
        assert (await s.exec(select(Call))).all() == []


async def test_missing_parts_are_asked_for(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send("/call")
    await user.wait_for("Who should I call")
    await user.send("12")
    asked_again = await user.wait_for("Send another number")
    assert "not a valid phone number" in asked_again.text
    await user.send(CALLEE)
    await user.wait_for("What should the agent do")
    await user.send("Ask whether the pharmacy is open on Sunday")
    confirm = await user.wait_for("Ready to call")
    assert confirm.labels == ["📞 Call", "✏️ Edit", "✖️ Cancel", "📲 Ring me when a human answers"]
    assert "Ask whether the pharmacy is open on Sunday" in confirm.text


async def test_cancel_and_stale_confirmation_buttons(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send(f"/call {CALLEE} ask whether the pharmacy is open on Sunday")
    confirm = await user.wait_for("Ready to call")
    pressed = await user.press(confirm, "✖️ Cancel")
    await pressed.wait_answered()
    await user.wait_for(lambda m: m.id == confirm.id and m.text.startswith("Cancelled"))
    stale = await user.press(confirm.id, "go:" + confirm.button("📞 Call")["callback_data"].split(":")[1]) \
        if user.chat()[-1].buttons else None
    assert stale is None  # the buttons are gone with the edit
    assert bot_env.net.calls == {}


async def test_edit_changes_the_task_before_dialing(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send(f"/call {CALLEE} ask whether the pharmacy is open on Sunday")
    confirm = await user.wait_for("Ready to call")
    await (await user.press(confirm, "✏️ Edit")).wait_answered()
    await user.wait_for("Send the new task")
    await user.send("Ask whether the pharmacy is open on Saturday")
    second = await user.wait_for("Ready to call", after=confirm)
    assert "Saturday" in second.text
    old = await user.press(confirm, "📞 Call")
    answer = await old.wait_answered()
    assert "expired" in answer.get("text", "")
    assert bot_env.net.calls == {}


async def test_contacts_add_list_and_call_by_name(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send("/contacts add aetna +1 212 555 0123")
    await user.wait_for("Saved aetna")
    await user.send("/contacts add aetna 12")
    await user.wait_for("I can't save that number")
    await user.send("/contacts")
    await user.wait_for(re.escape(f"aetna: {CALLEE}"))
    await user.send("/call aetna check a prior authorization")
    confirm = await user.wait_for("Ready to call")
    assert "aetna (+1 212-555-0123)" in confirm.text
    await user.send("/contacts remove aetna")
    await user.wait_for("Removed aetna")
    async with bot_env.db.session() as s:
        assert (await s.exec(select(Contact))).all() == []


async def test_profile_fields_are_validated_and_saved(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send("/profile facts NPI 1234567890")
    await user.wait_for("Saved facts")
    await user.send("/profile timezone Mars/Olympus")
    await user.wait_for("is not a timezone")
    await user.send("/profile callback")
    await user.wait_for("Send the new value for callback")
    await user.send("+1 415 555 0142")
    await user.wait_for(r"Saved callback: \+14155550142")
    await user.send("/profile confirm off")
    await user.wait_for("Saved confirm: off")
    await user.send("/profile")
    shown = await user.wait_for("Your profile")
    assert "NPI 1234567890" in shown.text and "+14155550142" in shown.text
    async with bot_env.db.session() as s:
        row = await s.get(User, OWNER_ID)
    assert row is not None and row.confirm_calls is False and row.standing_facts == "NPI 1234567890"


async def test_steering_without_a_live_call_is_explained(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send("/hangup")
    await user.wait_for("No call is live")
    await user.send("/say hello")
    await user.wait_for("No call is live", after=user.chat()[-2].id)
    await user.send("please be brief")
    reply = await user.wait_for("/help lists everything")
    assert "No call is live" in reply.text


@pytest.mark.parametrize("bot_overrides", [{"max_concurrent_calls": 1}])
async def test_second_call_at_the_concurrency_limit_is_refused(bot_env: BotEnv) -> None:
    user = bot_env.user
    await user.send(f"/call {CALLEE} ask whether the pharmacy is open on Sunday")
    confirm = await user.wait_for("Ready to call")
    await user.press(confirm, "📞 Call")
    await user.wait_for(lambda m: m.id == confirm.id and "Call #" in m.text)
    await user.send(f"/call {CALLEE} ask whether the pharmacy is open on Monday")
    reply = await user.wait_for("I can't place that call")
    assert "1 call is already in progress" in reply.text and "/hangup" in reply.text
    assert len(bot_env.net.calls) == 1
