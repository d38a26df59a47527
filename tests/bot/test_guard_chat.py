"""The owner's side of the cost guard and the do-not-call list, via the Telegram emulator and real PTB."""

from __future__ import annotations

import time

from sqlmodel import select

from bot.cards import CallCard, action_line, summary_text
from shared import dnc
from shared.models import Call
from tests.bot.conftest import BotEnv

CALLEE = "+12125550123"


async def test_owner_sees_and_edits_the_do_not_call_list(bot_env: BotEnv) -> None:
    user = bot_env.user
    await dnc.add(bot_env.db, CALLEE, source="callee", reason="please don't call again", call_id=None)
    await user.send("/dnc")
    listing = await user.wait_for("Do-not-call list")
    assert "+12125550123 (asked on a call" in listing.text
    # /call refuses it with the reason and the way out.
    await user.send(f"/call {CALLEE} ask whether the pharmacy is open on Sunday")
    refused = await user.wait_for("do-not-call list: the person who answered asked")
    assert "/dnc remove +12125550123" in refused.text
    await user.send("/dnc remove (212) 555-0123")
    removed = await user.wait_for("from the do-not-call list; it may be called again")
    assert removed.text.startswith("Removed +1 212-555-0123")
    assert await dnc.find(bot_env.db, CALLEE) is None
    await user.send("/dnc add 212 555 0123")
    added = await user.wait_for("is on the do-not-call list: /call and /schedule will refuse it")
    assert added.text.startswith("+1 212-555-0123")
    row = await dnc.find(bot_env.db, CALLEE)
    assert row is not None and row.source == "owner"
    await user.send("/dnc frobnicate")
    await user.wait_for("Use /dnc add <number>")
    async with bot_env.db.session() as s:
        assert (await s.exec(select(Call))).all() == []


def test_card_shows_running_cost_and_median_latency() -> None:
    card = CallCard(call_id=3, chat_id=1, callee=CALLEE, status="in-progress",
                    answered_at=time.monotonic() - 65)
    card.cost, card.v2v_ms = 0.0123, 640.0
    assert card.status_line() == "🟢 In progress · 1:05 · $0.0123 · replies in 0.6 s"
    assert action_line("cost", {"total": 0.0123}) is None  # the card shows it, no extra line
    assert action_line("limit_warning", {"limit": "cost", "max": 1.0}) == (
        "💰 The call is near its cost limit ($1.00): the agent is wrapping up")
    assert "is now on the do-not-call list" in (action_line("do_not_call", {"number": CALLEE}) or "")


def test_summary_shows_the_total_cost() -> None:
    call = Call(id=9, to_number=CALLEE, status="completed", outcome="achieved", duration_s=75,
                cost={"total": 0.0411, "items": {}, "currency": "USD"})
    assert "duration 1:15 · cost $0.0411" in summary_text(call, CALLEE)
