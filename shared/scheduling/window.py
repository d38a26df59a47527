"""Calling windows: the local hours and weekdays, in the callee's timezone, when a call may be placed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from shared.scheduling.when import zone

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WindowError(ValueError):
    """A window setting is malformed; str() says what is expected."""


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'mon,wed,fri', 'sat-sun', 'all' -> weekday numbers (Monday = 0)."""
    text = text.strip().lower()
    if text in ("all", "daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if last else a
        except ValueError:
            raise WindowError(f"{part!r} is not a day or range; write e.g. mon-fri or mon,wed,fri") from None
        # A range may wrap around the week end: "fri-mon".
        days.update((a + k) % 7 for k in range((b - a) % 7 + 1))
    if not days:
        raise WindowError("no calling days given; write e.g. mon-fri")
    return frozenset(days)


def parse_clock(text: str) -> time:
    """'08:00' -> 08:00; '24:00' is the end of the day, so a window can run to midnight."""
    if text.strip() == "24:00":
        return time.max
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise WindowError(f"{text!r} is not a time of day; write HH:MM, e.g. 08:00") from None


@dataclass(frozen=True)
class CallingWindow:
    """Calls start only at [start, end) local time on `days` in `tz` (the callee's zone)."""

    start: time
    end: time
    days: frozenset[int]
    tz: str

    @classmethod
    def parse(cls, start: str, end: str, days: str, tz: str) -> CallingWindow:
        window = cls(parse_clock(start), parse_clock(end), parse_days(days), tz)
        if window.start >= window.end:
            raise WindowError(f"the window {start}-{end} is empty; the start must be before the end")
        zone(tz)
        return window

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(zone(self.tz))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, when: datetime) -> datetime:
        """`when` itself if the window is open then, else the next moment it opens (UTC)."""
        if self.contains(when):
            return when
        local_zone = zone(self.tz)
        local = when.astimezone(local_zone)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            # Built from the wall clock, so a DST change between now and then is handled by zoneinfo.
            opening = datetime.combine(day, self.start, tzinfo=local_zone)
            if opening >= local:
                return opening.astimezone(UTC)
        raise WindowError("the calling window never opens")  # unreachable: days is never empty

    def describe(self) -> str:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M} {days} ({self.tz})"
