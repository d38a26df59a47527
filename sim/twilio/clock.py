"""A monotonic clock that can run faster than the wall clock.

Every duration inside the phone network (ringing, hold music, frame pacing, time limits) is expressed in
"call milliseconds"; with ``speed=20`` one real second covers twenty seconds of call. Pacing targets
absolute deadlines computed from the start time, so a loop that wakes late catches up and never drifts.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()

    def now_ms(self) -> float:
        """Call milliseconds since the clock was made."""
        return (time.monotonic() - self._t0) * 1000.0 * self.speed

    def real_s(self, call_ms: float) -> float:
        """Wall-clock seconds that ``call_ms`` call milliseconds take."""
        return call_ms / 1000.0 / self.speed

    async def sleep_ms(self, call_ms: float) -> None:
        # Even when late, yield once: lines catching up after a stall then interleave tick by tick, so a
        # conference leg never drains its queue before the other leg has produced the frames it needs.
        await asyncio.sleep(self.real_s(call_ms) if call_ms > 0 else 0)

    async def sleep_until_ms(self, deadline_ms: float) -> None:
        await self.sleep_ms(deadline_ms - self.now_ms())
