"""Per-turn latency figures, measured on the audio path with a monotonic clock, and p50/p95 helpers.

A turn's clock starts when the callee's speech ends as far as we can know it (the STT's ``speech_final``
or ``UtteranceEnd`` arrives); each later stage is stamped once: LLM first token, first phrase ready,
TTS first byte, first audio frame sent to Twilio. Barge-in reaction is speech detected -> ``clear`` sent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

STAGES = ("llm_first_token_ms", "first_phrase_ms", "tts_first_byte_ms", "first_audio_ms")


def now() -> float:
    return time.perf_counter()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class TurnTimer:
    start: float
    stamps: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        """Stamp ``stage`` the first time only."""
        if stage not in self.stamps:
            self.stamps[stage] = (now() - self.start) * 1000

    def figures(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.stamps.items()}


@dataclass
class TurnMetrics:
    turns: list[dict[str, float]] = field(default_factory=list)
    barge_ins_ms: list[float] = field(default_factory=list)

    def add(self, figures: dict[str, float]) -> None:
        self.turns.append(figures)

    def summary(self) -> dict[str, dict[str, float]]:
        """{figure: {"p50", "p95", "n"}} over the call's turns, plus barge_in_ms."""
        series: dict[str, list[float]] = {}
        for turn in self.turns:
            for name, value in turn.items():
                series.setdefault(name, []).append(value)
        if self.barge_ins_ms:
            series["barge_in_ms"] = list(self.barge_ins_ms)
        return {name: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "n": len(v)}
                for name, v in series.items()}
