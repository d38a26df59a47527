"""The scheduler: APScheduler wakes the process when a scheduled call is due; the database decides the rest.

How jobs survive restarts: each ScheduledCall has one APScheduler job (`scheduled-call-<id>`, a date
trigger at `run_at`) in a SQLAlchemy job store on the product's own database, so a new process finds it.

How only one process fires a job: every process runs a scheduler on the same job store, and more than one
may wake for the same job. The job is only a wake-up; the lock is the conditional UPDATE in
`store.claim` (`status='running' WHERE id=? AND status='pending'`): one process changes the row and
places the call, the others change nothing and stand back. Retries use the same trick (`running ->
pending WHERE last_call_id=?`), so a `call.ended` seen by every process schedules one retry.

Why BackgroundScheduler and not AsyncIOScheduler: the job store is synchronous SQLAlchemy; in its own
thread its queries never block the event loop. Due jobs hop to the loop with `call_soon_threadsafe`, and
our own job-store calls go through `asyncio.to_thread`.

Lateness, the calling window and the grace period are judged with the injected `clock`, not APScheduler's
(its jobs never misfire: `misfire_grace_time=None`), so tests drive time with `run_due()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.date import DateTrigger
from loguru import logger
from sqlalchemy import create_engine

from shared import events
from shared.bus import EventBus
from shared.db import Database, sync_url
from shared.models import ScheduledCall
from shared.phone import timezone_of
from shared.scheduling import policy, store
from shared.scheduling.policy import ScheduleSettings, attempt_result, should_retry
from shared.scheduling.when import describe
from shared.scheduling.window import CallingWindow

PlaceCall = Callable[[ScheduledCall], Awaitable[int]]   # places one attempt, returns the Call id
Notify = Callable[[int, str], Awaitable[None]]          # (owner's Telegram id, text)
Clock = Callable[[], datetime]

JOB_PREFIX = "scheduled-call-"
RESULT_TEXT = {"interrupted": "cut off while dialing (the dialer stopped; the call may not have gone out)"}
JOBS_TABLE = "apscheduler_jobs"


def utcnow() -> datetime:
    return datetime.now(UTC)


def wake_up(sc_id: int) -> None:
    """The stored job's function. It does nothing: the scheduler's listener does the work on the loop."""


class _SharedStoreScheduler(BackgroundScheduler):
    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            # APScheduler makes one last pass after shutdown(); it would take due jobs out of the shared
            # store with no executor left to run them, and another process would never see them.
            return None
        try:
            return super()._process_jobs()  # type: ignore[no-any-return]
        except JobLookupError:
            # Another process ran the same one-shot job and removed it first: just look again.
            return 0.0


def job_store_url(url: str) -> str:
    """The synchronous URL of our database, for APScheduler's job store."""
    return sync_url(url)


def callee_window(row: ScheduledCall) -> CallingWindow:
    tz = timezone_of(row.to_number) or row.timezone
    return CallingWindow.parse(row.window_start, row.window_end, row.window_days, tz)


class CallScheduler:
    """Scheduled calls for every user of this process: create, cancel, run now, fire, retry."""

    def __init__(self, db: Database, *, place_call: PlaceCall, notify: Notify, bus: EventBus | None = None,
                 settings: ScheduleSettings | None = None, clock: Clock = utcnow,
                 run_timer: bool = True) -> None:
        self.db = db
        self.settings = settings or ScheduleSettings()
        self.clock = clock
        self._place_call = place_call
        self._notify = notify
        self._bus = bus
        self._run_timer = run_timer
        self._engine = create_engine(job_store_url(db.url), pool_pre_ping=not db.url.startswith("sqlite"))
        self._store = SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE)
        self._aps = _SharedStoreScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self._aps.add_jobstore(self._store, "shared")
        self._aps.add_jobstore(MemoryJobStore(), "local")
        self._aps.add_listener(self._on_job_executed, EVENT_JOB_EXECUTED)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    # --- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the job store, catch up on what happened while down, start listening and waking."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._aps.start, paused=not self._run_timer)
        if self._run_timer:
            # Jobs added by other processes are only seen when this one looks: look regularly.
            self._aps.add_job(wake_up, "interval", args=[0], seconds=self.settings.poll_seconds,
                              id="poll", jobstore="local")
        if self._bus is not None:
            subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(subscribed))
            await subscribed.wait()
        await self.reconcile()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._aps.shutdown, wait=False)
        await asyncio.to_thread(self._engine.dispose)

    async def reconcile(self) -> None:
        """Every open row gets its job back; attempts that ended while no one listened are settled, and
        attempts cut off between claim and dial are given up."""
        for row, _call in await store.ended_attempts(self.db):
            await self.on_call_ended(row.last_call_id or 0)
        await self.sweep_stale_claims()
        for row in await store.list_open(self.db):
            if row.status == store.PENDING and await self._job_run_at(row.id or 0) is None:
                await self._add_job(row.id or 0, row.run_at)

    # --- what the bot calls -----------------------------------------------------------------------

    def new_row(self, *, owner_id: int, to_number: str, task: str, run_at: datetime,
                timezone: str) -> ScheduledCall:
        """An unsaved row with this process's defaults (the bot shows it before saving)."""
        s = self.settings
        return ScheduledCall(owner_id=owner_id, to_number=to_number, task=task, run_at=run_at,
                             timezone=timezone, max_attempts=s.max_attempts,
                             retry_delay_minutes=s.retry_delay_minutes, window_start=s.window_start,
                             window_end=s.window_end, window_days=s.window_days)

    async def schedule(self, row: ScheduledCall) -> ScheduledCall:
        callee_window(row)  # refuse a malformed window now, not when the job is due
        row = await store.create(self.db, row)
        await self._add_job(row.id or 0, row.run_at)
        logger.info("scheduled call {} for {} at {}", row.id, row.to_number, row.run_at.isoformat())
        return row

    async def cancel(self, sc_id: int, owner_id: int | None = None) -> bool:
        """No more attempts. A call already ringing goes on (hang it up from its card)."""
        row = await store.get(self.db, sc_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            return False
        cancelled = await store.move(self.db, sc_id, store.PENDING, store.CANCELED) or \
            await store.move(self.db, sc_id, store.RUNNING, store.CANCELED)
        await self._remove_job(sc_id)
        return cancelled

    async def run_now(self, sc_id: int, owner_id: int | None = None) -> bool:
        """Place a pending one now, whatever its time and window: the owner asked for it explicitly."""
        row = await store.get(self.db, sc_id)
        if row is None or row.status != store.PENDING or (owner_id is not None and row.owner_id != owner_id):
            return False
        await self._remove_job(sc_id)
        await self.fire(sc_id, force=True)
        return True

    async def list_open(self, owner_id: int) -> list[ScheduledCall]:
        return await store.list_open(self.db, owner_id)

    # --- firing -----------------------------------------------------------------------------------

    async def run_due(self) -> int:
        """Fire every job due at `clock()`: what APScheduler's timer does at wall time, for a test clock."""
        await self.sweep_stale_claims()
        due = await asyncio.to_thread(self._store.get_due_jobs, self.clock())
        fired = 0
        for job in due:
            if not job.id.startswith(JOB_PREFIX):
                continue
            await self._remove_job(int(job.args[0]))
            await self.fire(int(job.args[0]))
            fired += 1
        return fired

    async def fire(self, sc_id: int, *, force: bool = False) -> None:
        """A job is due: miss it, move it into the calling window, or claim it and place the call."""
        row = await store.get(self.db, sc_id)
        if row is None or row.status != store.PENDING:
            return  # cancelled, or another process already claimed it
        now = self.clock()
        if not force:
            if now < row.run_at:
                await self._add_job(sc_id, row.run_at)  # an early or stale wake-up: wait for the row's time
                return
            if now - row.run_at > self.settings.grace:
                if await store.move(self.db, sc_id, store.PENDING, store.MISSED):
                    await self._tell(row, f"Scheduled call #{sc_id} to {row.to_number} was missed: it was "
                                          f"due {describe(row.run_at, row.timezone)} while I was not "
                                          "running. Schedule it again if it is still needed.")
                return
            window = callee_window(row)
            opening = window.next_opening(now)
            if opening > now:
                if await store.move(self.db, sc_id, store.PENDING, store.PENDING, if_run_at=row.run_at,
                                    run_at=opening):
                    await self._add_job(sc_id, opening)
                    await self._tell(row, f"Scheduled call #{sc_id} to {row.to_number} is outside the "
                                          f"callee's calling window {window.describe()}; moved to "
                                          f"{describe(opening, row.timezone)}.")
                return
        if not await store.claim(self.db, sc_id, now):
            return
        await self._place(row, attempt=row.attempts + 1)

    async def sweep_stale_claims(self) -> None:
        """A claim whose call never came: the process that claimed it stopped while dialing. Its lock would
        otherwise hold the row "running" for ever; it counts as an attempt that may not have been placed."""
        for row in await store.stale_claims(self.db, self.clock() - self.settings.claim_lease):
            logger.warning("scheduled call {}: attempt {} was claimed but never dialed; giving it up",
                           row.id, row.attempts)
            await self._after_attempt(row.id or 0, "interrupted", None)

    async def _place(self, row: ScheduledCall, *, attempt: int) -> None:
        sc_id = row.id or 0
        try:
            call_id = await self._place_call(row)
        except Exception as exc:
            logger.warning("scheduled call {} attempt {} could not be placed: {}", sc_id, attempt, exc)
            await self._tell(row, f"Scheduled call #{sc_id}: attempt {attempt}/{row.max_attempts} to "
                                  f"{row.to_number} could not be placed: {exc}")
            await self._after_attempt(sc_id, "failed", None)
            return
        if not await store.set_last_call(self.db, sc_id, call_id):
            logger.warning("scheduled call {}: call {} placed after its claim was given up", sc_id, call_id)
        await self._tell(row, f"Scheduled call #{sc_id}: attempt {attempt}/{row.max_attempts}, calling "
                              f"{row.to_number} now (call #{call_id}).")
        call = await store.get_call(self.db, call_id)
        if call is not None and call.ended_at is not None:
            await self.on_call_ended(call_id)  # it ended before we recorded it as the last call

    # --- after each attempt -----------------------------------------------------------------------

    async def on_call_ended(self, call_id: int) -> None:
        row = await store.by_last_call(self.db, call_id)
        call = await store.get_call(self.db, call_id)
        if row is None or call is None or row.status != store.RUNNING:
            return
        await self._after_attempt(row.id or 0, attempt_result(call), call_id)

    async def _after_attempt(self, sc_id: int, result: str, call_id: int | None) -> None:
        row = await store.get(self.db, sc_id)
        if row is None:
            return
        head = f"Scheduled call #{sc_id}: attempt {row.attempts}/{row.max_attempts} to {row.to_number}"
        said = RESULT_TEXT.get(result, result)
        if should_retry(result, row.attempts, row.max_attempts):
            next_at = self.clock() + timedelta(minutes=row.retry_delay_minutes)
            if await store.move(self.db, sc_id, store.RUNNING, store.PENDING, last_call_id=call_id,
                                run_at=next_at):
                await self._add_job(sc_id, next_at)
                nxt = f"({row.attempts + 1}/{row.max_attempts}) at {describe(next_at, row.timezone)}"
                await self._tell(row, f"{head}: {said}. Next attempt {nxt}.")
            return
        final = store.DONE if result == "completed" else store.FAILED
        if await store.move(self.db, sc_id, store.RUNNING, final, last_call_id=call_id):
            tail = "done." if final == store.DONE else (
                "no attempts left." if result in policy.RETRY_ON else "stopped.")
            await self._tell(row, f"{head}: {said}; {tail}")

    async def _listen(self, subscribed: asyncio.Event) -> None:
        assert self._bus is not None
        async with self._bus.subscribe(events.CALL_ENDED) as sub:
            subscribed.set()
            async for _topic, event in sub:
                if isinstance(event, events.CallEnded):
                    self._spawn(self.on_call_ended(event.call_id))

    # --- plumbing ---------------------------------------------------------------------------------

    def _on_job_executed(self, event: JobExecutionEvent) -> None:
        # Runs in APScheduler's worker thread: hand the work to the event loop.
        if self._loop is None:
            return
        if event.job_id.startswith(JOB_PREFIX):
            sc_id = int(event.job_id.removeprefix(JOB_PREFIX))
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.fire(sc_id)))
        elif event.job_id == "poll":
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.sweep_stale_claims()))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("scheduled call step failed")

    async def idle(self) -> None:
        """Wait until the steps started by wake-ups and bus events are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _tell(self, row: ScheduledCall, text: str) -> None:
        try:
            await self._notify(row.owner_id, text)
        except Exception as exc:  # a chat hiccup must not undo the scheduling step already taken
            logger.warning("could not tell user {} about scheduled call {}: {}", row.owner_id, row.id, exc)

    async def _add_job(self, sc_id: int, run_at: datetime) -> None:
        await asyncio.to_thread(
            self._aps.add_job, wake_up, DateTrigger(run_date=run_at, timezone=UTC), args=[sc_id],
            id=f"{JOB_PREFIX}{sc_id}", jobstore="shared", replace_existing=True, misfire_grace_time=None)

    async def _remove_job(self, sc_id: int) -> None:
        with contextlib.suppress(JobLookupError):
            await asyncio.to_thread(self._aps.remove_job, f"{JOB_PREFIX}{sc_id}", "shared")

    async def _job_run_at(self, sc_id: int) -> datetime | None:
        job = await asyncio.to_thread(self._aps.get_job, f"{JOB_PREFIX}{sc_id}", "shared")
        return None if job is None else job.next_run_time
