"""Cost arithmetic, do-not-call detection and list, per-user daily limits refused in CallService."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared import dnc, limits
from shared.calls import CallRefused, CallService
from shared.costs import Units, breakdown, describe
from shared.db import Database
from shared.models import Call, User

OWNER = 7
NUMBER = "+12125550123"


class NoDialer:
    """prepare() never dials; these tests only vet."""

    async def place_call(self, *, to: str, call_id: int, record: bool, time_limit_s: int) -> str:
        raise AssertionError("must not dial")


def test_cost_is_units_times_prices(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(price_twilio_per_min=0.02, price_deepgram_stt_per_min=0.006,
                                price_openai_input_per_mtok=2.0, price_openai_output_per_mtok=8.0,
                                price_anthropic_input_per_mtok=1.0, price_anthropic_output_per_mtok=5.0,
                                price_elevenlabs_per_1k_chars=0.1)
    units = Units(twilio_seconds=61, stt_seconds=90)
    units.add_llm("openai", 10_000, 1_000)
    units.add_llm("openai", 5_000, 500)
    units.add_llm("anthropic", 1_000, 100)
    units.add_tts("elevenlabs", 1234)
    cost = breakdown(units, settings)
    assert cost["units"]["twilio_minutes"] == 2  # 61 s is two started minutes
    assert cost["items"]["twilio"] == pytest.approx(0.04)
    assert cost["items"]["stt"] == pytest.approx(0.009)
    assert cost["items"]["llm_openai"] == pytest.approx((15_000 * 2 + 1_500 * 8) / 1e6)
    assert cost["items"]["llm_anthropic"] == pytest.approx((1_000 * 1 + 100 * 5) / 1e6)
    assert cost["items"]["tts_elevenlabs"] == pytest.approx(0.1234)
    assert cost["total"] == pytest.approx(sum(cost["items"].values()))
    assert describe(cost).startswith("Cost $0.2159 (phone $0.0400, speech-to-text $0.0090")


def test_zero_call_time_costs_nothing(settings_factory) -> None:  # type: ignore[no-untyped-def]
    cost = breakdown(Units(), settings_factory())
    assert cost["total"] == 0 and cost["units"]["twilio_minutes"] == 0


@pytest.mark.parametrize("text", [
    "Please don't call this number again.", "Put me on your do-not-call list.", "Remove me from your list.",
    "Stop calling me!", "Do not call us again, thank you.", "I don't want you to call me again.",
    "Please remove me from your calling list", "Never call here again", "Don’t call me anymore.",
    "Take my number off your list please", "Add me to your do not call list.",
])
def test_opt_out_phrases_are_detected(text: str) -> None:
    assert dnc.asks_not_to_be_called(text)


@pytest.mark.parametrize("text", [
    "Don't call me before 9 am, I'm at work.", "Sure, call me back tomorrow.",
    "We do not call patients back.",
    "Don't call the other office, call this one.", "The list of providers is on our website.",
    "Please call this number again if you need anything.", "I'll put you on hold.",
])
def test_ordinary_lines_are_not_opt_outs(text: str) -> None:
    assert not dnc.asks_not_to_be_called(text)


async def test_do_not_call_list_add_find_remove(db: Database) -> None:
    first = await dnc.add(db, NUMBER, source="callee", reason="please don't call again", call_id=None)
    again = await dnc.add(db, NUMBER, source="owner")
    assert again.id == first.id and again.source == "callee"  # the first entry (and its reason) stays
    assert [row.number for row in await dnc.entries(db)] == [NUMBER]
    found = await dnc.find(db, NUMBER)
    assert found is not None and "asked not to be called again" in dnc.refusal(found, "+1 212-555-0123")
    assert await dnc.remove(db, NUMBER) and not await dnc.remove(db, NUMBER)
    assert await dnc.find(db, NUMBER) is None


async def _calls_today(db: Database, count: int, *, duration_s: float = 30.0, total: float = 0.01) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    async with db.session() as s:
        for i in range(count):
            s.add(Call(owner_id=OWNER, to_number=NUMBER, twilio_sid=f"CA{tag}{i}", status="completed",
                       duration_s=duration_s, answered_at=now - timedelta(minutes=1), ended_at=now,
                       cost={"total": total, "items": {}}))
        # Yesterday's call and a call Twilio refused (no CallSid) do not count.
        s.add(Call(owner_id=OWNER, to_number=NUMBER, twilio_sid=f"CAold{tag}", status="completed",
                   duration_s=600, created_at=now - timedelta(days=2), cost={"total": 5.0}))
        s.add(Call(owner_id=OWNER, to_number=NUMBER, status="failed"))
        await s.commit()


@pytest.fixture
async def owner(db: Database) -> Database:
    async with db.session() as s:
        s.add(User(id=OWNER, first_name="Sam"))
        await s.commit()
    return db


async def test_daily_call_limit_refuses_with_the_figures(owner: Database, settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(daily_max_calls=3, twilio_from_number="+12125550100")
    calls = CallService(settings, owner, NoDialer())
    await _calls_today(owner, 2)
    await calls.prepare(OWNER, NUMBER, "Confirm the appointment on Tuesday.")  # 2 of 3: fine
    await _calls_today(owner, 1)
    with pytest.raises(CallRefused) as refused:
        await calls.prepare(OWNER, NUMBER, "Confirm the appointment on Tuesday.")
    assert str(refused.value) == ("You have used 3 of 3 calls today; the limit resets at midnight (UTC).")


async def test_daily_minutes_and_cost_limits(owner: Database, settings_factory) -> None:  # type: ignore[no-untyped-def]
    await _calls_today(owner, 3, duration_s=61, total=0.5)  # 2 billed minutes each
    usage = await limits.usage_today(owner, settings_factory(), OWNER)
    assert (usage.calls, usage.minutes, usage.cost) == (3, 6, 1.5)
    by_minutes = limits.refusal(usage, settings_factory(daily_max_minutes=6))
    assert by_minutes == ("You have used 6 of 6 call minutes today (3 calls); the limit resets at midnight "
                          "(UTC).")
    by_cost = limits.refusal(usage, settings_factory(daily_max_cost=1.5))
    assert by_cost is not None and by_cost.startswith("You have spent $1.50 of your $1.50 daily budget")
    assert limits.refusal(usage, settings_factory(daily_max_cost=2, daily_max_minutes=0)) is None


async def test_day_is_the_users_own_calendar_day(owner: Database, settings_factory) -> None:  # type: ignore[no-untyped-def]
    async with owner.session() as s:
        user = await s.get(User, OWNER)
        assert user is not None
        user.timezone = "America/New_York"
        s.add(user)
        await s.commit()
    # 03:00 UTC is 22:00 or 23:00 the day before in New York: a call at 02:00 UTC is "today" there.
    now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    async with owner.session() as s:
        s.add(Call(owner_id=OWNER, to_number=NUMBER, twilio_sid="CAny", created_at=now - timedelta(hours=1),
                   duration_s=10, cost={"total": 0.02}))
        await s.commit()
    usage = await limits.usage_today(owner, settings_factory(), OWNER, now=now)
    assert usage.calls == 1 and usage.resets_at.tzname() == "EST"


async def test_do_not_call_number_is_refused_at_prepare(owner: Database, settings_factory) -> None:  # type: ignore[no-untyped-def]
    calls = CallService(settings_factory(twilio_from_number="+12125550100"), owner, NoDialer())
    await dnc.add(owner, NUMBER, source="owner", added_by=OWNER)
    with pytest.raises(CallRefused, match=r"\+1 212-555-0123 is on the do-not-call list: you put it"):
        await calls.prepare(OWNER, "(212) 555-0123", "Confirm the appointment on Tuesday.")
    await dnc.remove(owner, NUMBER)
    await calls.prepare(OWNER, "(212) 555-0123", "Confirm the appointment on Tuesday.")


def test_call_log_lines_mask_secrets() -> None:
    import io

    from loguru import logger

    from shared.logs import setup_logging

    sink = io.StringIO()
    setup_logging("INFO", sink=sink)
    try:
        logger.bind(call_id=5).info("callee said: my PIN is 4 3 2 1 and the card is 4111 1111 1111 1111")
        logger.info("chat 4111111111111111 is not a call line")
    finally:
        setup_logging("INFO")
    call_line, other = sink.getvalue().splitlines()
    assert call_line.endswith("callee said: my PIN is •••• and the card is •••• ••••")
    assert other.endswith("chat 4111111111111111 is not a call line")
