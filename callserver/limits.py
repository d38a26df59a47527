"""Time on the call: the media clock, the call and hold limits with their warnings, and dead silence.

Time is counted in audio received from Twilio (8 mu-law bytes per ms, every stream of the call). Twilio
sends a frame every 20 ms for as long as the call is up, music, silence or speech, so this is call time;
it needs no timer task, and it runs at whatever speed the audio arrives (a compressed test clock works
unchanged). Twilio's own ``TimeLimit`` (MAX_CALL_MINUTES, set when dialing) is the hard backstop; we end
politely a little before it so the goodbye is heard.
"""

from __future__ import annotations

from dataclasses import dataclass

from callserver.audio import BYTES_PER_MS, rms

SILENCE_RMS = 120.0
"""Below this a frame is dead air (line noise sits around 10-60; speech and music are far above)."""
SILENCE_REPORT_MS = 30_000.0


@dataclass
class Limit:
    """A deadline with a warning before it; ``check`` says what is due, each at most once."""

    name: str
    limit_ms: float
    reserve_ms: float = 0.0
    """End this much before the limit (the call limit keeps room for a goodbye before Twilio cuts)."""
    warned: bool = False
    reached: bool = False

    @classmethod
    def with_goodbye(cls, name: str, limit_ms: float) -> Limit:
        return cls(name, limit_ms, reserve_ms=min(20_000.0, 0.25 * limit_ms))

    @property
    def end_at_ms(self) -> float:
        return self.limit_ms - self.reserve_ms

    @property
    def warn_at_ms(self) -> float:
        return self.end_at_ms - min(60_000.0, 0.25 * self.limit_ms)

    def check(self, elapsed_ms: float) -> str | None:
        """'warn', 'end' or None for ``elapsed_ms`` since the limit started counting."""
        if not self.reached and elapsed_ms >= self.end_at_ms:
            self.reached = self.warned = True
            return "end"
        if not self.warned and elapsed_ms >= self.warn_at_ms:
            self.warned = True
            return "warn"
        return None

    @property
    def next_due_ms(self) -> float:
        """Elapsed time before which ``check`` has nothing to say (so the caller can skip asking)."""
        if not self.warned:
            return self.warn_at_ms
        return self.end_at_ms if not self.reached else float("inf")

    def left_s(self, elapsed_ms: float) -> int:
        return max(0, round((self.end_at_ms - elapsed_ms) / 1000))


@dataclass
class SilenceMeter:
    """Runs of dead air; reports a run once when it passes ``report_ms``."""

    report_ms: float = SILENCE_REPORT_MS
    run_ms: float = 0.0
    reported: bool = False

    def feed(self, frame: bytes) -> float | None:
        """The run's length when it just crossed the report threshold, else None."""
        return self.feed_level(rms(frame), len(frame) / BYTES_PER_MS)

    def feed_levels(self, levels: list[float], frames_ms: list[float]) -> float | None:
        """``feed`` for frames whose ``rms`` was measured in one batch: the run's length when it crossed
        the report threshold within them (at most once: the report ends that stretch's reporting)."""
        crossed = None
        for level, frame_ms in zip(levels, frames_ms, strict=True):
            crossed = self.feed_level(level, frame_ms) or crossed
        return crossed

    def feed_level(self, level: float, frame_ms: float) -> float | None:
        """``feed`` for a frame whose ``rms`` is known already (measured with others in one batch)."""
        if level >= SILENCE_RMS:
            self.run_ms, self.reported = 0.0, False
            return None
        self.run_ms += frame_ms
        if not self.reported and self.run_ms >= self.report_ms:
            self.reported = True
            return self.run_ms
        return None
