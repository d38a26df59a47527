"""Scheduled calls: time parsing, calling windows, retries, restarts and the one-scheduler-fires lock.

The clock is injected (`Clock.now`), and `CallScheduler.run_due()` fires what is due at that time, so no
test sleeps. The call pipeline is stood in for by `Dialer`, which stores a Call row the way the real
placing service does; ending an attempt writes the Call's final status and publishes `call.ended`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.bus import InProcessBus
from shared.db import Database
from shared.events import CALL_ENDED, CallEnded
from shared.migrate import upgrade_async
from shared.models import Call, ScheduledCall, User
from shared.scheduling import (
    CallingWindow,
    CallScheduler,
    ScheduleSettings,
    WhenError,
    attempt_result,
    merge_number_tokens,
    parse_when,
    split_command,
    store,
)
from shared.scheduling.window import WindowError, parse_days

NY_NUMBER = "+12125550100"  # America/New_York
MONDAY_NOON_UTC = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # Mon 12:00 in New York
FAR = timedelta(days=90)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class Dialer:
    """Places attempts as Call rows and lets the test end them like the call server would."""

    def __init__(self, db: Database, bus: InProcessBus) -> None:
        self.db, self.bus = db, bus
        self.placed: list[int] = []
        self.messages: list[tuple[int, str]] = []

    async def place(self, row: ScheduledCall) -> int:
        async with self.db.session() as s:
            call = Call(owner_id=row.owner_id, to_number=row.to_number, task=row.task,
                        scheduled_call_id=row.id, status="queued")
            s.add(call)
            await s.commit()
            await s.refresh(call)
        self.placed.append(call.id or 0)
        return call.id or 0

    async def notify(self, user_id: int, text: str) -> None:
        self.messages.append((user_id, text))

    async def end(self, call_id: int, status: str, answered_by: str = "", outcome: str = "") -> None:
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
            assert call is not None
            call.status, call.answered_by, call.outcome = status, answered_by, outcome
            call.ended_at = datetime.now(UTC)
            s.add(call)
            await s.commit()
        await self.bus.publish(CALL_ENDED, CallEnded(call_id=call_id, status=status))


async def _add_user(db: Database, user_id: int = 42) -> None:
    async with db.session() as s:
        s.add(User(id=user_id, first_name="Ann", timezone="Europe/Paris"))
        await s.commit()


@pytest.fixture
async def stack(db: Database):  # type: ignore[no-untyped-def]
    await _add_user(db)
    bus = InProcessBus()
    dialer = Dialer(db, bus)
    clock = Clock(MONDAY_NOON_UTC)
    made: list[CallScheduler] = []

    async def make(**kw: object) -> CallScheduler:
        sched = CallScheduler(db, place_call=dialer.place, notify=dialer.notify, bus=bus,
                              settings=ScheduleSettings(), clock=clock.now, run_timer=False, **kw)  # type: ignore[arg-type]
        await sched.start()
        made.append(sched)
        return sched

    yield make, dialer, clock
    for sched in made:
        await sched.close()


async def _schedule(sched: CallScheduler, run_at: datetime, **fields: object) -> ScheduledCall:
    row = sched.new_row(owner_id=42, to_number=NY_NUMBER, task="ask the opening hours", run_at=run_at,
                        timezone="Europe/Paris")
    for name, value in fields.items():
        setattr(row, name, value)
    return await sched.schedule(row)


# --- natural times ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected_local"), [
    ("tomorrow 9am", datetime(2026, 1, 6, 9, 0)),
    ("in 2 hours", datetime(2026, 1, 5, 20, 0)),
    ("mon 8:30", datetime(2026, 1, 12, 8, 30)),   # today is Monday 18:00 Paris: next Monday
    ("tomorrow at 9", datetime(2026, 1, 6, 9, 0)),
    ("tomorrow 9", datetime(2026, 1, 6, 9, 0)),      # a bare number after a day word is the hour
    ("fri 14", datetime(2026, 1, 9, 14, 0)),
    ("friday 8", datetime(2026, 1, 9, 8, 0)),
    ("2026-03-04 09:00", datetime(2026, 3, 4, 9, 0)),
    ("2026-03-04T09:00", datetime(2026, 3, 4, 9, 0)),
])
def test_parse_when_in_the_users_timezone(text: str, expected_local: datetime) -> None:
    when = parse_when(text, tz="Europe/Paris", now=MONDAY_NOON_UTC, max_ahead=FAR)
    assert when.tzinfo is UTC
    from zoneinfo import ZoneInfo
    assert when == expected_local.replace(tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)


def test_same_words_resolve_per_timezone() -> None:
    paris = parse_when("tomorrow 9am", tz="Europe/Paris", now=MONDAY_NOON_UTC, max_ahead=FAR)
    new_york = parse_when("tomorrow 9am", tz="America/New_York", now=MONDAY_NOON_UTC, max_ahead=FAR)
    assert new_york - paris == timedelta(hours=6)
    # In Tokyo it is already Tuesday 02:00, so "tomorrow" is Wednesday there.
    tokyo = parse_when("tomorrow 9am", tz="Asia/Tokyo", now=MONDAY_NOON_UTC, max_ahead=FAR)
    assert tokyo == datetime(2026, 1, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "reason"), [
    ("yesterday 10am", "in the past"),
    ("2025-12-01 09:00", "in the past"),
    ("flibbertigibbet", "could not read"),
    ("", "no time was given"),
    ("in 400 days", "too far ahead"),
])
def test_bad_times_get_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(WhenError, match=reason):
        parse_when(text, tz="Europe/Paris", now=MONDAY_NOON_UTC, max_ahead=FAR)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(WhenError, match="not a timezone"):
        parse_when("tomorrow 9am", tz="Mars/Olympus", now=MONDAY_NOON_UTC, max_ahead=FAR)


def test_split_command_finds_where_the_time_ends() -> None:
    def parse(text: str) -> datetime:
        return parse_when(text, tz="Europe/Paris", now=MONDAY_NOON_UTC, max_ahead=FAR)

    def is_target(token: str) -> bool:
        return token.startswith("+") or token == "dentist"

    args = merge_number_tokens("mon 8:30 +1 212 555 0100 ask about hours".split())
    when, target, task = split_command(args, is_target=is_target, parse=parse)
    assert (target, task) == ("+12125550100", "ask about hours")
    assert when == parse("mon 8:30")
    when, target, task = split_command("in 2 hours dentist move my appointment".split(),
                                       is_target=is_target, parse=parse)
    assert (target, task, when) == ("dentist", "move my appointment", MONDAY_NOON_UTC + timedelta(hours=2))
    with pytest.raises(WhenError, match="no task"):
        split_command(["tomorrow", "9am", "dentist"], is_target=is_target, parse=parse)
    with pytest.raises(WhenError, match="could not read"):
        split_command(["soonish", "dentist", "hi"], is_target=is_target, parse=parse)
    with pytest.raises(WhenError, match="/schedule <when>"):
        split_command(["tomorrow", "hello"], is_target=is_target, parse=parse)


# --- calling windows ----------------------------------------------------------------------------------

def test_window_next_opening_in_the_callees_zone() -> None:
    window = CallingWindow.parse("08:00", "20:00", "mon-fri", "America/New_York")
    assert window.next_opening(MONDAY_NOON_UTC) == MONDAY_NOON_UTC
    late_friday = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)  # Fri 21:00 New York
    assert window.next_opening(late_friday) == datetime(2026, 1, 12, 13, 0, tzinfo=UTC)  # Mon 08:00
    early = datetime(2026, 1, 6, 11, 0, tzinfo=UTC)  # Tue 06:00 New York
    assert window.next_opening(early) == datetime(2026, 1, 6, 13, 0, tzinfo=UTC)
    # Across the March DST change the opening is still 08:00 on the wall clock (12:00 UTC).
    assert window.next_opening(datetime(2026, 3, 7, 17, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def test_window_settings_are_checked() -> None:
    assert parse_days("fri-mon") == {4, 5, 6, 0}
    assert parse_days("all") == set(range(7))
    all_day = CallingWindow.parse("00:00", "24:00", "all", "UTC")
    assert all_day.contains(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    for start, end, days in [("8am", "20:00", "mon-fri"), ("20:00", "08:00", "mon-fri"),
                             ("08:00", "20:00", "weekdays")]:
        with pytest.raises(WindowError):
            CallingWindow.parse(start, end, days, "UTC")


def test_attempt_results() -> None:
    def call(**kw: str) -> Call:
        return Call(to_number=NY_NUMBER, **kw)

    assert attempt_result(call(status="busy")) == "busy"
    assert attempt_result(call(status="no-answer")) == "no-answer"
    assert attempt_result(call(status="completed", answered_by="machine_end_beep")) == "voicemail"
    assert attempt_result(call(status="completed", outcome="voicemail")) == "voicemail"
    assert attempt_result(call(status="completed", answered_by="human", outcome="achieved")) == "completed"
    assert attempt_result(call(status="canceled")) == "canceled"


# --- the scheduler ------------------------------------------------------------------------------------

async def test_fires_on_time_and_not_before(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    sched = await make()
    due = MONDAY_NOON_UTC + timedelta(hours=2)
    row = await _schedule(sched, due)
    clock.at = due - timedelta(seconds=1)
    assert await sched.run_due() == 0
    assert dialer.placed == []
    clock.at = due
    assert await sched.run_due() == 1
    assert len(dialer.placed) == 1
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.attempts, fresh.last_call_id) == ("running", 1,
                                                                                        dialer.placed[0])
    assert "attempt 1/3" in dialer.messages[-1][1] and dialer.messages[-1][0] == 42
    await dialer.end(dialer.placed[0], "completed", answered_by="human", outcome="achieved")
    await _settle(sched)
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and fresh.status == "done"
    assert dialer.messages[-1][1].endswith("completed; done.")


async def _settle(sched: CallScheduler) -> None:
    # The bus listener hands call.ended to a task; let it be picked up, then wait for it.
    for _ in range(5):
        await asyncio.sleep(0)
    await sched.idle()


async def test_restart_between_scheduling_and_firing(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    first = await make()
    due = MONDAY_NOON_UTC + timedelta(hours=3)
    row = await _schedule(first, due)
    await first.close()
    second = await make()
    assert await second._job_run_at(row.id or 0) == due  # the job itself survived, in the database
    clock.at = due + timedelta(minutes=5)  # came back a little late: within the grace period
    assert await second.run_due() == 1
    assert len(dialer.placed) == 1


async def test_job_missed_while_down_beyond_grace_is_reported(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    first = await make()
    row = await _schedule(first, MONDAY_NOON_UTC + timedelta(hours=1))
    await first.close()
    clock.at = MONDAY_NOON_UTC + timedelta(hours=5)
    second = await make()
    await second.run_due()
    assert dialer.placed == []
    fresh = await store.get(second.db, row.id or 0)
    assert fresh is not None and fresh.status == "missed"
    assert "was missed" in dialer.messages[-1][1]


async def test_retries_after_busy_and_no_answer_then_gives_up(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    sched = await make()
    row = await _schedule(sched, MONDAY_NOON_UTC + timedelta(minutes=1))
    clock.at = MONDAY_NOON_UTC + timedelta(minutes=1)
    await sched.run_due()
    for n, status in enumerate(["busy", "no-answer"], start=1):
        await dialer.end(dialer.placed[-1], status)
        await _settle(sched)
        fresh = await store.get(sched.db, row.id or 0)
        assert fresh is not None and fresh.status == "pending"
        assert fresh.run_at == clock.at + timedelta(minutes=30)
        assert f"attempt {n}/3 to {NY_NUMBER}: {status}. Next attempt ({n + 1}/3)" in dialer.messages[-1][1]
        clock.at = fresh.run_at - timedelta(seconds=1)
        assert await sched.run_due() == 0  # the retry waits for its delay
        clock.at = fresh.run_at
        assert await sched.run_due() == 1
        assert len(dialer.placed) == n + 1
    await dialer.end(dialer.placed[-1], "completed", answered_by="machine_end_beep")
    await _settle(sched)
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.attempts) == ("failed", 3)
    assert "voicemail; no attempts left" in dialer.messages[-1][1]
    assert len(set(dialer.placed)) == 3  # each attempt was its own call


async def test_call_ended_while_down_is_settled_at_start(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, _clock = stack
    first = await make()
    row = await _schedule(first, MONDAY_NOON_UTC)
    await first.run_due()
    await first.close()
    await dialer.end(dialer.placed[0], "busy")  # nobody is listening now
    second = await make()
    fresh = await store.get(second.db, row.id or 0)
    assert fresh is not None and fresh.status == "pending" and fresh.attempts == 1


async def test_job_outside_the_calling_window_moves_to_next_opening(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    sched = await make()
    saturday = datetime(2026, 1, 10, 15, 0, tzinfo=UTC)  # Sat 10:00 New York
    row = await _schedule(sched, saturday)
    clock.at = saturday
    await sched.run_due()
    assert dialer.placed == []
    monday_8_ny = datetime(2026, 1, 12, 13, 0, tzinfo=UTC)
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.run_at) == ("pending", monday_8_ny)
    assert "outside the callee's calling window 08:00-20:00 mon,tue,wed,thu,fri (America/New_York)" in \
        dialer.messages[-1][1]
    assert "Mon 12 Jan 2026 14:00 Europe/Paris" in dialer.messages[-1][1]  # told in the user's zone
    clock.at = monday_8_ny
    assert await sched.run_due() == 1
    assert len(dialer.placed) == 1


async def test_cancel_and_run_now(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, clock = stack
    sched = await make()
    cancelled = await _schedule(sched, MONDAY_NOON_UTC + timedelta(hours=1))
    later = await _schedule(sched, MONDAY_NOON_UTC + timedelta(days=2))
    assert not await sched.cancel(cancelled.id or 0, owner_id=7)  # someone else's
    assert await sched.cancel(cancelled.id or 0, owner_id=42)
    assert not await sched.cancel(cancelled.id or 0, owner_id=42)
    assert [r.id for r in await sched.list_open(42)] == [later.id]
    assert await sched.run_now(later.id or 0, owner_id=42)
    assert len(dialer.placed) == 1
    clock.at = MONDAY_NOON_UTC + timedelta(days=3)
    assert await sched.run_due() == 0  # neither the cancelled nor the run job fires again
    assert len(dialer.placed) == 1


async def test_failed_placement_counts_as_an_attempt(stack) -> None:  # type: ignore[no-untyped-def]
    make, dialer, _clock = stack

    async def refuse(row: ScheduledCall) -> int:
        raise RuntimeError("too many calls at once")

    dialer.place = refuse  # type: ignore[method-assign]
    sched = await make()
    row = await _schedule(sched, MONDAY_NOON_UTC)
    await sched.run_due()
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.attempts) == ("pending", 1)
    assert "could not be placed: too many calls at once" in dialer.messages[-2][1]


async def test_claim_cut_off_before_dialing_is_retried_after_its_lease(stack) -> None:  # type: ignore[no-untyped-def]
    """The process that claimed an attempt died before dialing: the row must not stay "running" for ever."""
    make, dialer, clock = stack
    first = await make()
    row = await _schedule(first, MONDAY_NOON_UTC)
    assert await store.claim(first.db, row.id or 0, clock.at)  # what fire() does, then the process dies
    await first.close()
    second = await make()  # start-up sweep: the lease has not run out yet, the claim may still be dialing
    fresh = await store.get(second.db, row.id or 0)
    assert fresh is not None and fresh.status == "running"
    clock.at += timedelta(seconds=121)  # SCHEDULE_CLAIM_LEASE_SECONDS=120 by default
    await second.run_due()
    fresh = await store.get(second.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.attempts) == ("pending", 1)
    assert "attempt 1/3 to +12125550100: cut off while dialing" in dialer.messages[-1][1]
    assert "Next attempt (2/3)" in dialer.messages[-1][1]
    clock.at = fresh.run_at
    assert await second.run_due() == 1
    assert len(dialer.placed) == 1  # the retry dialed; nothing dialed twice


async def test_retry_claim_forgets_the_previous_call(stack) -> None:  # type: ignore[no-untyped-def]
    """A second attempt's claim must not look like the first call ended: a cut-off retry is swept, not
    settled with the first call's result again."""
    make, dialer, clock = stack
    sched = await make()
    row = await _schedule(sched, MONDAY_NOON_UTC)
    await sched.run_due()
    await dialer.end(dialer.placed[0], "busy")
    await _settle(sched)
    fresh = await store.get(sched.db, row.id or 0)
    assert fresh is not None and fresh.status == "pending"
    clock.at = fresh.run_at
    assert await store.claim(sched.db, row.id or 0, clock.at)  # attempt 2 claimed, then the process dies
    await sched.close()
    again = await make()
    assert await store.ended_attempts(again.db) == []
    fresh = await store.get(again.db, row.id or 0)
    assert fresh is not None and (fresh.status, fresh.last_call_id, fresh.attempts) == ("running", None, 2)


async def test_apscheduler_timer_wakes_the_job_at_wall_time(db: Database) -> None:
    """The real APScheduler loop (wall clock) fires a due job through the listener."""
    await _add_user(db)
    bus = InProcessBus()
    dialer = Dialer(db, bus)
    placed = asyncio.Event()
    original = dialer.place

    async def place(row: ScheduledCall) -> int:
        placed.set()
        return await original(row)

    sched = CallScheduler(db, place_call=place, notify=dialer.notify, bus=bus, run_timer=True)
    await sched.start()
    try:
        await _schedule(sched, datetime.now(UTC) + timedelta(milliseconds=200),
                        window_start="00:00", window_end="24:00", window_days="all")
        await asyncio.wait_for(placed.wait(), 5)
        await sched.idle()
        assert len(dialer.placed) == 1
    finally:
        await sched.close()


async def test_two_schedulers_on_postgres_fire_a_job_once(pg_url: str) -> None:
    await upgrade_async(pg_url)
    db = Database(pg_url)
    await _add_user(db)
    bus = InProcessBus()
    dialer = Dialer(db, bus)
    clock = Clock(MONDAY_NOON_UTC)
    a, b = (CallScheduler(db, place_call=dialer.place, notify=dialer.notify, bus=bus, clock=clock.now,
                          run_timer=False) for _ in range(2))
    await a.start()
    await b.start()
    try:
        rows = [await _schedule(a, MONDAY_NOON_UTC + timedelta(minutes=i)) for i in range(5)]
        clock.at = MONDAY_NOON_UTC + timedelta(minutes=5)
        # Both wake for the same due jobs at the same moment; the row claim lets one place each call.
        await asyncio.gather(a.run_due(), b.run_due(), *(s.fire(r.id or 0) for r in rows for s in (a, b)))
        assert len(dialer.placed) == 5
        # call.ended reaches both processes; exactly one retry is scheduled and announced per call.
        await dialer.end(dialer.placed[0], "busy")
        await _settle(a)
        await _settle(b)
        retries = [m for _, m in dialer.messages if "Next attempt (2/3)" in m]
        assert len(retries) == 1
    finally:
        await a.close()
        await b.close()
        await db.close()


async def test_two_live_timers_on_postgres_fire_once(pg_url: str) -> None:
    """Two real APScheduler loops on one job store: both wake, one call."""
    await upgrade_async(pg_url)
    db = Database(pg_url)
    await _add_user(db)
    bus = InProcessBus()
    dialer = Dialer(db, bus)
    a, b = (CallScheduler(db, place_call=dialer.place, notify=dialer.notify, run_timer=True)
            for _ in range(2))
    await a.start()
    await b.start()
    try:
        row = await _schedule(a, datetime.now(UTC) + timedelta(milliseconds=300),
                              window_start="00:00", window_end="24:00", window_days="all")
        b._aps.wakeup()  # b learns of a's new job now instead of at its next poll
        for _ in range(50):
            fresh = await store.get(db, row.id or 0)
            if fresh is not None and fresh.status == "running":
                break
            await asyncio.sleep(0.05)
        await a.idle()
        await b.idle()
        assert len(dialer.placed) == 1
    finally:
        await a.close()
        await b.close()
        await db.close()


# --- the whole pipeline on sim/ -----------------------------------------------------------------------

async def test_scheduled_call_through_the_whole_pipeline_with_retries(call_stack) -> None:  # type: ignore[no-untyped-def]
    """Placed on time by the real CallService + Twilio SDK into sim's phone network and call server;
    busy, then no answer (each ended by the call server's status handling), then a human answers."""
    from dialer.demo import OWNER_ID
    from shared.scheduling.placing import place_via
    from sim.scenarios import library

    number = "+12125550108"
    async with call_stack(speed=60) as stack:
        stack.network.attach(number, library.busy())
        clock = Clock(MONDAY_NOON_UTC)
        told: list[str] = []

        async def notify(user_id: int, text: str) -> None:
            assert user_id == OWNER_ID
            told.append(text)

        sched = CallScheduler(stack.db, place_call=place_via(stack.calls), notify=notify, bus=stack.bus,
                              clock=clock.now, run_timer=False)
        await sched.start()
        try:
            row = sched.new_row(owner_id=OWNER_ID, to_number=number, task="Confirm the appointment on "
                                "Tuesday at 3 pm.", run_at=MONDAY_NOON_UTC + timedelta(hours=1),
                                timezone="America/New_York")
            row = await sched.schedule(row)
            clock.at = row.run_at - timedelta(minutes=1)
            assert await sched.run_due() == 0
            clock.at = row.run_at
            calls: list[Call] = []
            # Each attempt's callee behaves as the next scenario; retries come 30 minutes apart.
            for next_scenario in (library.no_answer(), library.friendly_human(ring_ms=500), None):
                assert await sched.run_due() == 1
                fresh = await store.get(stack.db, row.id or 0)
                assert fresh is not None and fresh.last_call_id is not None
                calls.append(await stack.wait_end(fresh.last_call_id, timeout_s=30))
                if next_scenario is None:
                    break
                retry = await _wait_status(sched, row.id or 0, "pending")
                assert retry.run_at == clock.at + timedelta(minutes=30)
                stack.network.attach(number, next_scenario)
                clock.at = retry.run_at
            await _wait_status(sched, row.id or 0, "done")
        finally:
            await sched.close()
        assert [c.status for c in calls] == ["busy", "no-answer", "completed"]
        assert all(c.scheduled_call_id == row.id for c in calls) and len({c.id for c in calls}) == 3
        assert calls[2].answered_by == "human" and calls[2].summary
        assert [t for t in told if "attempt" in t][-1].endswith("completed; done.")
        assert sum("Next attempt" in t for t in told) == 2


async def _wait_status(sched: CallScheduler, sc_id: int, status: str) -> ScheduledCall:
    """The call server's CallEnded reaches the scheduler through the bus a moment after wait_end."""
    async with asyncio.timeout(10):
        while True:
            await sched.idle()
            row = await store.get(sched.db, sc_id)
            if row is not None and row.status == status:
                return row
            await asyncio.sleep(0.02)
