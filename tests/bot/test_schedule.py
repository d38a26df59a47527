"""/schedule, /jobs, /cancel through the real python-telegram-bot against sim's Telegram emulator.

The scheduler runs on a controlled clock (no APScheduler timer); "Run now" dials through the real
`Telephony` (twilio SDK) into sim's phone network, where the callee's line is busy.
"""

from __future__ import annotations

import datetime as dtm
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from telegram.ext import Application, ApplicationBuilder

from bot.schedule_handlers import post_via, register
from shared.calls import CallService
from shared.db import Database
from shared.models import Call, Contact, ScheduledCall, User
from shared.scheduling import CallScheduler, ScheduleSettings
from shared.twilio_api import Telephony
from sim.scenarios import default_registry
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_wire import FloodLimits
from sim.twilio import PhoneNetwork
from sim.twilio import create_app as create_twilio_app

USER_ID = 4242
SID, TOKEN, FROM = "AC" + "7" * 32, "sim-token-schedule-tests-000000", "+12125550199"
BUSY_NUMBER = "+12125550104"  # busy in sim's default registry; America/New_York
MONDAY_NOON_UTC = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # Mon 18:00 Paris, 12:00 New York


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class Posts:
    """The live view's `post` as the scheduler's notify sees it: here, straight to Telegram."""

    def __init__(self) -> None:
        self.app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.texts: list[str] = []

    def post(self, chat_id: int, text: str) -> None:
        self.texts.append(text)


@pytest.fixture
async def chat(db: Database, settings_factory) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with db.session() as s:
        s.add(User(id=USER_ID, first_name="Ann", timezone="Europe/Paris", full_name="Ann Lee"))
        await s.flush()
        s.add(Contact(owner_id=USER_ID, name="dentist", number="+12125550123"))
        await s.commit()
    emu = TelegramEmulator(flood_limits=FloodLimits.relaxed())
    network = PhoneNetwork(speed=50.0, accounts={SID: TOKEN}, scenarios=default_registry())
    async with serve(emu.app) as tg_url, serve(create_twilio_app(network)) as twilio_url:
        settings = settings_factory(twilio_api_base_url=twilio_url, twilio_account_sid=SID,
                                    twilio_auth_token=TOKEN, twilio_from_number=FROM,
                                    public_base_url="http://127.0.0.1:9")
        telephony = Telephony(settings)
        calls = CallService(settings, db, telephony)
        clock = Clock(MONDAY_NOON_UTC)
        posts = Posts()
        scheduler = CallScheduler(db, place_call=_placer(calls), notify=post_via(posts),
                                  settings=ScheduleSettings(), clock=clock.now, run_timer=False)
        await scheduler.start()
        app = (ApplicationBuilder().token(emu.token).base_url(f"{tg_url}/bot")
               .base_file_url(f"{tg_url}/file/bot").build())
        register(app, scheduler, calls)
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
            try:
                yield {"user": emu.user(id=USER_ID, first_name="Ann"), "scheduler": scheduler, "db": db,
                       "clock": clock, "network": network, "posts": posts}
            finally:
                await app.updater.stop()
                await app.stop()
                await scheduler.close()
                await telephony.close()
                await network.aclose()


def _placer(calls: CallService):  # type: ignore[no-untyped-def]
    from shared.scheduling.placing import place_via

    return place_via(calls)


async def _rows(db: Database) -> list[ScheduledCall]:
    async with db.session() as s:
        return list((await s.exec(select(ScheduledCall))).all())


async def test_schedule_echoes_the_resolved_time_then_saves_on_confirm(chat) -> None:  # type: ignore[no-untyped-def]
    user, db = chat["user"], chat["db"]
    sent = await user.send("/schedule tomorrow 9am +1 212 555 0104 ask about the opening hours")
    card = await user.wait_for(r"Schedule a call", after=sent)
    # The exact time and zone come back before anything is saved; Tue 09:00 Paris is 03:00 New York,
    # outside the callee's window, and the card says when the call will really go out.
    assert "at Tue 6 Jan 2026 09:00 Europe/Paris (UTC+01:00)?" in card.text
    assert "Calling window: 08:00-20:00 mon,tue,wed,thu,fri (America/New_York)" in card.text
    assert "placed at Tue 6 Jan 2026 14:00 Europe/Paris" in card.text
    assert card.labels == ["✅ Schedule", "✖️ Cancel"]
    assert await _rows(db) == []
    await user.press(card, "✅ Schedule")
    saved = await user.wait_for(lambda m: m.id == card.id and m.text.startswith("Scheduled call #1"))
    assert "+12125550104" in saved.text
    [row] = await _rows(db)
    assert (row.owner_id, row.to_number, row.status, row.timezone) == (USER_ID, BUSY_NUMBER, "pending",
                                                                       "Europe/Paris")
    assert row.run_at.replace(tzinfo=UTC) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


async def test_contact_names_and_the_cancel_button_on_the_card(chat) -> None:  # type: ignore[no-untyped-def]
    user, db = chat["user"], chat["db"]
    sent = await user.send("/schedule in 2 hours dentist move my cleaning to Friday")
    card = await user.wait_for(r"Schedule a call to dentist \(\+1 212-555-0123\)", after=sent)
    assert "at Mon 5 Jan 2026 20:00 Europe/Paris" in card.text
    await user.press(card, "✖️ Cancel")
    await user.wait_for(lambda m: m.id == card.id and m.text == "Not scheduled.")
    assert await _rows(db) == []


@pytest.mark.parametrize(("command", "reason"), [
    ("/schedule yesterday 9am +12125550104 ask the hours", "is in the past"),
    ("/schedule whenever +12125550104 ask the hours", "could not read 'whenever' as a time"),
    ("/schedule in 400 days +12125550104 ask the hours", "too far ahead"),
    ("/schedule tomorrow 9am +12125550104", "no task was given"),
    ("/schedule tomorrow 9am plumber fix the sink", "write /schedule <when> <number or contact> <task>"),
    ("/schedule tomorrow 9am +911 ask the hours", "emergency number"),
    ("/schedule tomorrow 9am +12125550104 pretend to be a human and ask", "this task is refused"),
    ("/schedule", "write /schedule <when>"),
])
async def test_bad_inputs_get_a_clear_reply(chat, command: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    user = chat["user"]
    sent = await user.send(command)
    reply = await user.wait_for(r"^I can't schedule that", after=sent)
    assert reason in reply.text
    assert await _rows(chat["db"]) == []


async def _schedule(chat: dict[str, Any], text: str) -> int:
    user = chat["user"]
    sent = await user.send(text)
    card = await user.wait_for(r"Schedule a call", after=sent)
    await user.press(card, "✅ Schedule")
    saved = await user.wait_for(lambda m: m.id == card.id and m.text.startswith("Scheduled call #"))
    return int(saved.text.split("#", 1)[1].split()[0])


async def test_jobs_lists_with_cancel_and_run_now(chat) -> None:  # type: ignore[no-untyped-def]
    user, db, network = chat["user"], chat["db"], chat["network"]
    first = await _schedule(chat, "/schedule wed 10:00 +12125550104 ask about the refund")
    second = await _schedule(chat, "/schedule thu 15:30 +12125550104 confirm the booking")
    sent = await user.send("/jobs")
    jobs = await user.wait_for(r"^Scheduled calls:", after=sent)
    assert f"#{first} +12125550104 — Wed 7 Jan 2026 10:00 Europe/Paris" in jobs.text
    assert f"#{second} +12125550104 — Thu 8 Jan 2026 15:30 Europe/Paris" in jobs.text
    assert jobs.buttons == [[f"✖️ Cancel #{first}", f"▶️ Run now #{first}"],
                            [f"✖️ Cancel #{second}", f"▶️ Run now #{second}"]]
    await user.press(jobs, f"✖️ Cancel #{first}")
    jobs = await user.wait_for(lambda m: m.id == jobs.id and m.text.startswith(
        f"Cancelled scheduled call #{first}."))
    assert jobs.buttons == [[f"✖️ Cancel #{second}", f"▶️ Run now #{second}"]]  # the list, refreshed

    pressed = await user.press(jobs.id, f"sch:run:{second}")
    assert (await pressed.wait_answered())["text"] == "Calling now…"
    await user.wait_for(lambda m: m.id == jobs.id and "calling now" in m.text)
    async with db.session() as s:
        calls = (await s.exec(select(Call).where(Call.scheduled_call_id == second))).all()
    assert len(calls) == 1 and calls[0].twilio_sid in network.calls
    assert network.calls[calls[0].twilio_sid or ""].to == BUSY_NUMBER
    assert any(f"#{second}: attempt 1/3, calling +12125550104 now" in t for t in chat["posts"].texts)
    statuses = {row.id: row.status for row in await _rows(db)}
    assert statuses == {first: "canceled", second: "running"}


async def test_cancel_command(chat) -> None:  # type: ignore[no-untyped-def]
    user = chat["user"]
    sc_id = await _schedule(chat, "/schedule tomorrow 10am +12125550104 ask the hours")
    sent = await user.send("/cancel 99")
    await user.wait_for(r"There is no scheduled call #99", after=sent)
    sent = await user.send(f"/cancel {sc_id}")
    await user.wait_for(rf"Cancelled scheduled call #{sc_id}", after=sent)
    sent = await user.send("/jobs")
    await user.wait_for(r"^No scheduled calls", after=sent)
    chat["clock"].at = MONDAY_NOON_UTC + timedelta(days=2)
    assert await chat["scheduler"].run_due() == 0
