"""The composition root: database, bus, call server and bot wired together in one event loop.

`dialer run` runs both halves in one process (SQLite + in-process bus by default); `dialer callserver`
and `dialer bot` run one half each and meet through PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from loguru import logger

from shared.bus import EventBus, create_bus
from shared.config import Settings
from shared.db import Database
from shared.migrate import upgrade_async

Part = Callable[[], Awaitable[None]]


GC_THRESHOLDS = (2_000, 10, 10)
"""gc.set_threshold after start-up: the measurements behind the numbers are in tune_gc."""


def tune_gc() -> None:
    """Keep garbage collection from stopping the call server's event loop for long: short, frequent pauses.

    A full collection walks every tracked object, and after start-up those are mostly module, SDK type
    and schema objects that live forever: measured at 50 calls (bench/latency.py) gen-2 pauses of up to
    210 ms, enough to stall every call's audio. ``gc.freeze`` moves what exists now out of the
    collector's sight.

    Thresholds: a collection's pause grows with the objects it walks, ~0.5 us each in this process (a
    10,000-object gen0: 5-6.5 ms; live call objects, cache-cold), so the thresholds set how long each
    pause is, not how much GC work is done overall. Measured with ``bench/latency.py --calls 50
    --turns 4`` (phases: 72 s of 50 calls, then the barge-in run; pauses as CPU ms of the collecting
    thread), once ElevenLabs responses stopped being
    cyclic garbage (callserver/http_release.py; before that a young collection could free ~11,000 objects
    and take 16-17 ms):

    - (10000, 20, 20), two runs: gen0 4 per phase, 2.1-6.5 ms, finding 140-534 garbage objects. Its gen1
      never comes within a bench run: every 20th young collection, ~6 min at this load, it walks the
      survivors of up to 200,000 young allocations; scaling the 7.7-13.2 ms gen1 pauses below (up to
      20,000) by 10 gives ~80-130 ms (an estimate, not measured), again and again for days.
    - (2000, 10, 10), one run: gen0 22 per phase, median ~1 ms, max 3.5-4.4 ms; gen1 1-2, 7.7-13.2 ms
      (they find only 70-316 objects of garbage: the pause is walking live young objects). Overhead p99
      27.3 ms (31.6 before the ElevenLabs fix) against 47.7 and 56.2 ms for (10000, 20, 20) on the same (busy)
      machine; the lead's earlier A/B: 22.7 ms against 29.7-35.

    A gen-2 collection needs, besides 10 gen1 ones, the old generation to have grown by 25% since the
    last one (CPython's rule), so on a server at steady load it stays rare; what it walks is the live
    calls' objects plus ended calls' cyclic garbage, at ~75 ns (microbenchmark) to ~0.5 us per object."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_priority(nice: int) -> int:
    """Ask for CPU priority ``nice`` for this thread and the threads it starts later; returns the nice
    value in effect. Never lowers a priority the process was started with.

    Realtime audio should run the moment its bytes arrive. When the machine is shared (the bot, a
    database, the benchmarks' emulators) a process woken by a socket may otherwise wait until the one
    running finishes its time slice: on the 2-vCPU benchmark VM, a ping-pong whose replier keeps
    computing 2 ms after replying takes 1.4-1.9 ms a round trip at equal priority or 2 nice levels apart,
    0.06-0.08 ms 5 levels apart (bench/wakeup.py). Not more than needed: at 150 calls (bench/capacity.py, a
    saturated machine) nice -10 starved the phone emulator (its loop lag p99 44-53 ms, 12% and 33% of the
    agent's words unheard in two runs) where -5 and 0 served every call. Linux keeps nice per thread:
    call this before worker threads start."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice >= current:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        logger.info("call server priority stays at nice {} (nice {} needs root or CAP_SYS_NICE; "
                    "set CALLSERVER_NICE=0 to silence this)", current, nice)
        return current
    return nice


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (uvicorn[standard] brings it): its event loop and socket transports
    cost far less per WebSocket message than asyncio's, and the call server handles thousands a second."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        return asyncio.new_event_loop
    return uvloop.new_event_loop


@contextlib.asynccontextmanager
async def storage(settings: Settings) -> AsyncIterator[tuple[Database, EventBus]]:
    """The database (SQLite is migrated on start so a fresh checkout just works) and the event bus."""
    if settings.is_sqlite:
        await upgrade_async(settings.database_url)
    db = Database(settings.database_url)
    bus = create_bus(settings.redis_url)
    try:
        yield db, bus
    finally:
        await bus.close()
        await db.close()


def callserver_part(settings: Settings, db: Database, bus: EventBus) -> Part:
    from callserver.app import create_app

    app = create_app(settings, bus=bus, db=db)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            access_log=False, ws_ping_interval=None, lifespan="on")
    server = uvicorn.Server(config)

    async def run() -> None:
        logger.info("call server on {}:{} (public {})", settings.host, settings.port,
                    settings.public_base_url)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has only a flag)
            await asyncio.sleep(0.05)
        tune_gc()  # after the app's start-up (providers, SDK imports): those objects live forever
        await serving

    run.web_app = app  # type: ignore[attr-defined]  # the bot mounts its webhook route here
    return run


def bot_part(settings: Settings, db: Database, bus: EventBus, web_app: object = None) -> Part:
    # ---- BOT PLUG-IN POINT (owned by the bot engineer) ------------------------------------------
    # `bot.app.run_bot(settings, bus=bus, db=db)` runs the Telegram bot and the scheduler until
    # cancelled; this is the only line that knows about the bot. In webhook mode (TELEGRAM_WEBHOOK_URL)
    # its update route is mounted on the call server's app when both run in this process.
    from bot.app import run_bot

    return lambda: run_bot(settings, bus=bus, db=db, web_app=web_app)
    # ---------------------------------------------------------------------------------------------


async def run_all(settings: Settings, *, with_bot: bool, with_callserver: bool) -> None:
    """Run the requested parts until one of them stops (or Ctrl-C); the others are then stopped."""
    async with storage(settings) as (db, bus):
        parts: list[Part] = []
        if with_callserver:
            parts.append(callserver_part(settings, db, bus))
        if with_bot:
            parts.append(bot_part(settings, db, bus, getattr(parts[0], "web_app", None) if parts else None))
        if not parts:
            return
        # uvicorn stops on SIGINT/SIGTERM itself; when any part ends, the TaskGroup cancels the rest.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(part()) for part in parts]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task not in done:
                    task.cancel()
