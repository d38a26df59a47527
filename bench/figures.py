"""Percentiles and the one-line summaries bench/latency.py and bench/capacity.py print."""

from __future__ import annotations

import math
from typing import Any


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def report(title: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"{title}: no samples"
    return (f"{title}: p50 {pct(values, 0.5):.1f} {unit}, p99 {pct(values, 0.99):.1f} {unit}, "
            f"max {max(values):.1f} {unit} (n={len(values)})")


def cpu_report(result: dict[str, Any]) -> str:
    """CPU per call-second of each process: what it costs, whatever else the machine was doing."""
    return ("CPU ms per call-second: " + ", ".join(f"{name} {ms:.1f}" for name, ms in result["cpu"].items())
            + f" ({result['call_seconds']:.0f} call-seconds)")


def gc_report(result: dict[str, Any]) -> str:
    def one(pauses: dict[str, list[float]]) -> str:
        return ", ".join(f"gen{gen} n={len(v)} max {max(v, default=0):.1f} ms"
                         f" (CPU max {max(pauses.get(gen + 'cpu', []), default=0):.1f})"
                         for gen, v in pauses.items() if not gen.endswith("cpu"))

    return "GC pauses: " + "; ".join(f"{name} {one(pauses)}" for name, pauses in result["gc"].items())
