"""The live view against the bus alone: the events the call server publishes drive the card, the transcript
and the summary; chat input becomes CallCommands. Telegram is sim/'s emulator with its flood limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import select

from shared import events
from shared.models import Call, TranscriptLine, utcnow
from sim.telegram_wire import FloodLimits
from tests.bot.conftest import BotEnv

CALLEE = "+12125550123"


async def place(env: BotEnv, task: str = "ask for the status of claim 4411") -> tuple[int, int]:
    """/call -> [Call]; returns (call id, card message id)."""
    user = env.user
    await user.send(f"/call {CALLEE} {task}")
    confirm = await user.wait_for("Ready to call", after=user.chat()[-1].id)
    await user.press(confirm, "📞 Call")
    await user.wait_for(lambda m: m.id == confirm.id and "Call #" in m.text and "Dialing" in m.text)
    for _ in range(200):  # the card says "Dialing" before Twilio's answer (the call sid) is stored
        async with env.db.session() as s:
            call = (await s.exec(select(Call).where(Call.card_message_id == confirm.id))).one()
        if call.twilio_sid:
            break
        await asyncio.sleep(0.025)
    assert call.card_message_id == confirm.id and call.twilio_sid in env.net.calls
    assert call.id is not None
    return call.id, confirm.id


async def publish(env: BotEnv, topic: str, event: object) -> None:
    await env.bus.publish(topic, event)  # type: ignore[arg-type]


async def end_call(env: BotEnv, call_id: int, lines: list[tuple[str, str]], **values: object) -> None:
    """Store what the call server stores at the end, then publish CallEnded."""
    async with env.db.session() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        for seq, (speaker, text) in enumerate(lines):
            s.add(TranscriptLine(call_id=call_id, seq=seq, speaker=speaker, text=text, offset_ms=seq * 2000,
                                 interrupted=text.endswith(" for")))
        for key, value in {"status": "completed", "ended_at": utcnow(), **values}.items():
            setattr(call, key, value)
        s.add(call)
        await s.commit()
    await publish(env, events.CALL_ENDED, events.CallEnded(call_id=call_id, status=str(values.get(
        "status", "completed")), reason=str(values.get("end_reason", ""))))


async def test_card_transcript_steering_and_summary(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, card_id = await place(env)
    async with env.bus.subscribe(events.CALL_COMMAND) as commands:
        await publish(env, events.CALL_STATUS, events.CallStatus(call_id=call_id, status="ringing"))
        await user.wait_for(lambda m: m.id == card_id and "Ringing" in m.text)
        await publish(env, events.CALL_STATUS, events.CallStatus(call_id=call_id, status="in-progress",
                                                                 answered_by="human"))
        card = await user.wait_for(lambda m: m.id == card_id and "answered by a person" in m.text)
        assert card.labels == ["☎️ Hang up", "↪️ Transfer to me", "💬 Say…", "📲 Ring me when a human answers"]
        script = [("agent", "Hi, this is Alex calling for Ann Lee."), ("callee", "Sure, what's the claim?"),
                  ("agent", "It's claim 4411 for"), ("callee", "Hold on please.")]
        for seq, (speaker, text) in enumerate(script):
            await publish(env, events.CALL_TRANSCRIPT, events.TranscriptLine(
                call_id=call_id, seq=seq, speaker=speaker, text=text, interrupted=(seq == 2)))  # type: ignore[arg-type]
        await publish(env, events.CALL_ACTION, events.CallAction(call_id=call_id, kind="on_hold"))
        await publish(env, events.CALL_ACTION, events.CallAction(call_id=call_id, kind="fact", detail={
            "label": "Reference number", "value": "W-778"}))
        shown = await user.wait_for("Noted: Reference number: W-778")
        lines = shown.text.splitlines()
        assert lines[0] == "🤖 Agent: Hi, this is Alex calling for Ann Lee."
        assert "🤖 Agent: It's claim 4411 for… ✂️ (cut off)" in lines
        assert [ln.split(":")[0] for ln in lines] == ["🤖 Agent", "👤 Callee", "🤖 Agent", "👤 Callee",
                                                      "⏸ Waiting on hold", "📌 Noted"]
        await user.wait_for(lambda m: m.id == card_id and "On hold" in m.text)

        await user.send("Tell them the date of service is March 3")
        await user.wait_for(f"Passed to the agent on call #{call_id}")
        _, command = await commands.get(timeout=2)
        assert isinstance(command, events.CallCommand)
        assert (command.kind, command.call_id, command.text) == ("instruct", call_id,
                                                                 "Tell them the date of service is March 3")
        await user.send("/say One moment please")
        await user.wait_for("The agent will say")
        _, said = await commands.get(timeout=2)
        assert isinstance(said, events.CallCommand) and (said.kind, said.text) == ("say", "One moment please")
        await publish(env, events.CALL_TRANSCRIPT, events.TranscriptLine(
            call_id=call_id, seq=4, speaker="callee", text="I'm back."))
        later = await user.wait_for("I'm back")
        assert later.id > shown.id  # after the user's messages: a new transcript message, not an edit above

        await user.press(card_id, "☎️ Hang up")
        _, hangup = await commands.get(timeout=2)
        assert isinstance(hangup, events.CallCommand) and hangup.kind == "hangup"
    await end_call(env, call_id, script, outcome="achieved", summary="Claim 4411 is approved.",
                   facts=[{"label": "Reference number", "value": "W-778"}],
                   next_steps=["Wait for the letter"],
                   duration_s=134.0, answered_at=utcnow() - timedelta(seconds=134), end_reason="hangup",
                   latency={"turns": 3, "speech_end_to_first_audio": {"p50": 640.0, "p95": 910.0, "n": 3}})
    summary = await user.wait_for("✅ Call #")
    assert "duration 2:14" in summary.text and "p50 640 ms, p95 910 ms" in summary.text
    assert "Reference number: W-778" in summary.text and "Wait for the letter" in summary.text
    assert summary.labels == ["📄 Full transcript", "🔁 Call again"]
    card = await user.wait_for(lambda m: m.id == card_id and "Ended" in m.text)
    assert card.buttons == []

    pressed = await user.press(summary, "📄 Full transcript")
    await pressed.wait_answered()
    document = await user.wait_for(lambda m: m.file is not None)
    text = document.file.data.decode() if document.file else ""
    assert "Agent: It's claim 4411 for [interrupted]" in text and text.index("Hi, this is") < text.index(
        "Hold on please")
    stale = await user.press(summary, "🔁 Call again")
    await stale.wait_answered()
    await user.wait_for("Ready to call", after=document)


async def test_buttons_on_an_ended_call_say_so(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, card_id = await place(env)
    before = user.state.messages[card_id]
    await end_call(env, call_id, [], status="busy", end_reason="busy")
    report = await user.wait_for("📵")
    assert report.text == f"📵 Call #{call_id} to {CALLEE}: the line was busy."
    assert report.buttons == []
    # The stale card as the user still had it on screen (before the edit dropped the buttons).
    user.state.messages[card_id] = before
    pressed = await user.press(card_id, "☎️ Hang up")
    assert "already ended" in (await pressed.wait_answered())["text"]


async def test_hangup_while_ringing_uses_twilio_directly(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, _ = await place(env)
    async with env.db.session() as s:
        sid = (await s.get(Call, call_id)).twilio_sid  # type: ignore[union-attr]
    await user.send("/hangup")
    await user.wait_for(f"Hanging up call #{call_id}")
    phone_call = env.net.calls[sid or ""]
    await asyncio.wait_for(phone_call.ended.wait(), 3)
    assert phone_call.end_reason is not None


async def test_twilio_refusal_is_reported_on_the_card(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    await user.send(f"/call {CALLEE} ask for the status of claim 4411")
    confirm = await user.wait_for("Ready to call")
    env.net.faults.http_status, env.net.faults.fail_count = 500, 50
    await user.press(confirm, "📞 Call")
    card = await user.wait_for(lambda m: m.id == confirm.id and "Ended" in m.text)
    assert "Twilio refused the call" in card.text and card.buttons == []
    await user.wait_for("📵")


async def test_several_live_calls_need_a_reply_to_pick_one(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    first, first_card = await place(env)
    second, _ = await place(env, "ask whether they have the form")
    await user.send("say hello to them")
    await user.wait_for("Several calls are live")
    async with env.bus.subscribe(events.CALL_COMMAND) as commands:
        await user.reply_to(first_card, "ask for the fax number")
        await user.wait_for(f"Passed to the agent on call #{first}")
        _, command = await commands.get(timeout=2)
    assert isinstance(command, events.CallCommand) and command.call_id == first != second


async def test_transfer_defaults_to_the_callback_number(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, card_id = await place(env)
    async with env.bus.subscribe(events.CALL_COMMAND) as commands:
        await user.press(card_id, "↪️ Transfer to me")
        await user.wait_for("Transferring call")
        _, command = await commands.get(timeout=2)
        await user.send("/transfer 911")
        await user.wait_for("I can't transfer there")
    assert isinstance(command, events.CallCommand)
    assert (command.kind, command.number, command.call_id) == ("transfer", "+12125550199", call_id)


async def test_inbound_call_notifies_the_owner(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    async with env.db.session() as s:
        call = Call(direction="inbound", to_number="+12125550100", from_number="+13105550177",
                    status="ringing")
        s.add(call)
        await s.commit()
        await s.refresh(call)
    await publish(env, events.CALL_STATUS, events.CallStatus(call_id=call.id or 0, status="in-progress",
                                                             answered_by="human"))
    card = await user.wait_for("Incoming call")
    assert "+13105550177" in card.text and "In progress" in card.text


@pytest.fixture
def flood_limits() -> FloodLimits:
    """Most tests here are about content, not pacing: no flood limits (the burst test sets Telegram's)."""
    return FloodLimits.relaxed()


@pytest.mark.parametrize("flood_limits", [FloodLimits(chat_per_second=1.0, chat_burst=2)])
async def test_a_burst_under_flood_limits_and_an_outage_lose_nothing(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, _ = await place(env)
    await publish(env, events.CALL_STATUS, events.CallStatus(call_id=call_id, status="in-progress"))
    env.emu.faults.http_status, env.emu.faults.fail_count = 502, 3  # Telegram down for a moment
    total = 120
    for seq in range(total):
        await publish(env, events.CALL_TRANSCRIPT, events.TranscriptLine(
            call_id=call_id, seq=seq, speaker="callee" if seq % 2 else "agent",
            text=f"line {seq:03d} " + "w" * 60))
    await user.wait_for(f"line {total - 1:03d}", timeout=15)
    text = "\n".join(m.text for m in user.chat(from_bot=True) if "line " in m.text)
    numbers = [int(part.split()[0]) for part in text.split("line ")[1:]]
    assert numbers == list(range(total))
    transcript_messages = [m for m in user.chat(from_bot=True) if "line " in m.text]
    assert len(transcript_messages) <= 4  # batched: ~9 KB of lines in a few messages
    assert env.emu.faults.failed == 3
    assert env.emu.rejected_429 > 0  # the flood limit was really hit, and waited out


async def test_a_slow_telegram_never_holds_the_bus(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, _ = await place(env)
    await user.wait_for(lambda m: "Call #" in m.text)
    env.emu.faults.delay_s = 1.0  # every Bot API request now takes a second
    loop = asyncio.get_running_loop()
    started = loop.time()
    for seq in range(40):
        await publish(env, events.CALL_TRANSCRIPT, events.TranscriptLine(
            call_id=call_id, seq=seq, speaker="callee", text=f"slow {seq:02d}"))
    box = env.deps.live.outbox.chat(user.id)
    for _ in range(50):  # the subscriber takes every event at once; the lines wait in the outbox
        if box.queued_lines == 40 or loop.time() - started > 0.5:
            break
        await asyncio.sleep(0.01)
    assert box.queued_lines == 40 and loop.time() - started < 0.5
    env.emu.faults.delay_s = 0.0
    await user.wait_for("slow 39", timeout=10)
    text = "\n".join(m.text for m in user.chat(from_bot=True))
    assert [int(p.split()[0]) for p in text.split("slow ")[1:]] == list(range(40))
