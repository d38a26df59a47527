"""CPU time of the benchmark's processes, independent of what else runs on the machine.

Wall-clock figures (lag, latency) on a shared two-core machine depend on every other process; the CPU a
process spent per second of call does not, so it is what compares one version of an emulator (or of the
call server) with another. Read from ``/proc/<pid>/stat`` (utime + stime, clock ticks), so a parent can
sample its children without their cooperation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by ``pid`` (this process when None); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid or 'self'}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) may contain spaces: count fields from the closing parenthesis.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14 and 15)


@dataclass
class CpuWindow:
    """CPU used by named processes between ``start()`` and ``stop()``."""

    pids: dict[str, int | None]
    """Name -> pid (None: this process)."""
    used_s: dict[str, float] = field(default_factory=dict)
    _at_start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._at_start = {name: cpu_s(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.used_s = {name: cpu_s(pid) - self._at_start.get(name, 0.0) for name, pid in self.pids.items()}

    def per_call_second(self, call_seconds: float) -> dict[str, float]:
        """CPU ms per second of call, per process (10 = 1% of a core for every call in progress)."""
        if not call_seconds:
            return {}
        return {name: used * 1000 / call_seconds for name, used in self.used_s.items()}


def call_seconds(calls: list[object]) -> float:
    """Total answered time of the phone emulator's calls (in-progress -> end), in seconds."""
    total = 0.0
    for call in calls:
        statuses = call.log.statuses  # type: ignore[attr-defined]
        answered = next((t for status, t in statuses if status == "in-progress"), None)
        if answered is not None and statuses:
            total += (statuses[-1][1] - answered) / 1000
    return total
