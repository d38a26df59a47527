"""One task ticks every line of a network, each line on its own 20 ms phase of the network clock.

A task per call, each sleeping to its own deadline, meant 50 timer wake-ups a second per call: at 50-100
calls that loop overhead was the phone emulator's largest cost. Here one task wakes at the earliest
deadline and steps every line then due. Lines start on a PHASE_MS grid (their first frame is at most
PHASE_MS shorter), so at most 20 / PHASE_MS wake-ups per frame serve any number of calls. Not one shared
20 ms grid: real calls' media streams run on unrelated phases, and lining every call up makes all their
frames reach the call server in one burst every 20 ms, a load no real network produces (measured at 50
calls: "endpointing - 300" p50 2 -> 7 ms from that queueing alone). Deadlines stay absolute, so the
pacing does not drift; after a stall every line is stepped once per round, and the ticker yields between
rounds, as the per-line tasks did.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Callable
from typing import Protocol

from sim.twilio.clock import Clock

log = logging.getLogger(__name__)
PHASE_MS = 2.0


class Tickable(Protocol):
    due_ms: float
    """Network ms at which its next frame is due."""

    def tick(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class Ticker:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._members: dict[Tickable, None] = {}
        """In join order; a dict so that the per-round membership tests cost O(1), not a list scan."""
        self._task: asyncio.Task[None] | None = None
        self.round_end: list[Callable[[], None]] = []
        """Run after every round, before the ticker yields: work the round's ticks batched up."""

    def join(self, member: Tickable) -> float:
        """Add ``member``; return the time its first frame starts (its first tick is one frame on)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._members = {}  # any left belong to a loop that is gone
            self._task = loop.create_task(self._run())
        self._members[member] = None
        return math.floor(self.clock.now_ms() / PHASE_MS) * PHASE_MS

    def leave(self, member: Tickable) -> None:
        self._members.pop(member, None)

    async def _run(self) -> None:
        # Members joined before this first runs: their due_ms is set by then (join is synchronous).
        while self._members:
            await self.clock.sleep_until_ms(min(m.due_ms for m in self._members))
            now = self.clock.now_ms()
            for member in list(self._members):  # a tick may end calls (members leave) or start others
                if member.due_ms <= now and member in self._members:
                    try:
                        member.tick()
                    except Exception as exc:  # one broken line must not stop every other call's audio
                        log.exception("line tick failed")
                        self.leave(member)
                        member.fail(exc)
            for flush in self.round_end:
                try:
                    flush()
                except Exception:  # a batch that fails must not stop the audio either
                    log.exception("ticker round-end work failed")


_TICKERS: weakref.WeakKeyDictionary[Clock, Ticker] = weakref.WeakKeyDictionary()


def ticker_for(clock: Clock) -> Ticker:
    ticker = _TICKERS.get(clock)
    if ticker is None:
        ticker = _TICKERS[clock] = Ticker(clock)
    return ticker
