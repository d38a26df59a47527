"""The chat's view of hard calls: "On hold since HH:MM" (owner's timezone) on the card, recorded announcements
do not take the card off hold, a message when a person picks up, and lines for limits and voicemail."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.hard_lines import hard_line, is_hard
from shared import events
from shared.models import User
from tests.bot.conftest import BotEnv
from tests.bot.test_live import place, publish


async def test_hold_card_and_person_picked_up_message(bot_env: BotEnv) -> None:
    env, user = bot_env, bot_env.user
    call_id, card_id = await place(env)
    async with env.db.session() as s:
        owner = await s.get(User, user.id)
        assert owner is not None
        owner.timezone = "America/New_York"
        s.add(owner)
        await s.commit()
    await publish(env, events.CALL_STATUS, events.CallStatus(call_id=call_id, status="in-progress",
                                                             answered_by="human"))
    at = datetime(2026, 3, 2, 15, 42, tzinfo=UTC)  # 10:42 in New York (EST)
    await publish(env, events.CALL_ACTION, events.CallAction(call_id=call_id, kind="on_hold", at=at, detail={
        "since": at.isoformat(), "reason": "heard: please hold", "by": "announcement"}))
    await user.wait_for(lambda m: m.id == card_id and "On hold since 10:42" in m.text)
    await publish(env, events.CALL_TRANSCRIPT, events.TranscriptLine(
        call_id=call_id, seq=1, speaker="callee", text="Your call is important to us."))
    await user.wait_for("Your call is important to us.")
    card = await user.wait_for(lambda m: m.id == card_id and "On hold since" in m.text)
    assert "In progress" not in card.text  # an announcement is not a person
    await publish(env, events.CALL_ACTION, events.CallAction(call_id=call_id, kind="off_hold", detail={
        "by": "person", "held_s": 605, "recordings_skipped": 19}))
    await user.wait_for(f"A person picked up on call #{call_id}")
    await user.wait_for("Off hold after 10 min 05 s")
    await user.wait_for(lambda m: m.id == card_id and "In progress" in m.text and "On hold" not in m.text)


def test_lines_for_limits_voicemail_and_silence() -> None:
    assert hard_line("limit_warning", {"limit": "hold", "seconds_left": 60}) == (
        "⏳ About 60 s left before the hold time limit")
    assert "call time limit is reached" in (hard_line("limit_reached", {"limit": "call"}) or "")
    assert not is_hard("limit_warning", {"limit": "cost"})  # the cost guard's own lines
    assert hard_line("voicemail_left", {"message": "Hi Sam"}) == "📼 Voicemail left: \u201cHi Sam\u201d"
    assert hard_line("silence", {"seconds": 30}) == "🔇 Dead silence on the line for 30 s"
    assert is_hard("wait_on_hold", {}) and hard_line("wait_on_hold", {}) is None
