"""Per-user daily limits (calls, minutes, cost), checked before a call is dialed.

A "day" is the user's own calendar day (User.timezone), so the limit resets at their midnight. Only
calls the user placed count (inbound calls are not their choice); a call is counted once Twilio took it
(it has a CallSid), so a number Twilio refused does not use up the day. Minutes are billed minutes
(per started minute, as Twilio bills); a call still running counts its time so far. Cost is the stored
`Call.cost` total, or the call-time part for a call that has not ended yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import col, select

from shared.config import Settings
from shared.costs import money
from shared.db import Database
from shared.models import Call, User, utcnow


@dataclass(frozen=True)
class DailyUsage:
    calls: int
    minutes: int
    cost: float
    resets_at: datetime
    """The user's next midnight (aware, in their timezone)."""


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(at: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they are UTC.
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _billed_minutes(call: Call, now: datetime) -> int:
    seconds = call.duration_s
    answered = _aware(call.answered_at)
    if seconds is None and answered is not None and call.ended_at is None:
        seconds = (now - answered).total_seconds()
    return math.ceil(seconds / 60) if seconds and seconds > 0 else 0


async def usage_today(db: Database, settings: Settings, owner_id: int,
                      now: datetime | None = None) -> DailyUsage:
    """What `owner_id` has used since their local midnight."""
    now = now or utcnow()
    async with db.session() as s:
        user = await s.get(User, owner_id)
        zone = _zone(user.timezone if user else "UTC")
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
        rows = (await s.exec(select(Call).where(
            Call.owner_id == owner_id, Call.direction == "outbound", col(Call.twilio_sid).is_not(None),
            Call.created_at >= midnight.astimezone(UTC)))).all()
    minutes = sum(_billed_minutes(call, now) for call in rows)
    cost = 0.0
    for call in rows:
        if call.cost and "total" in call.cost:
            cost += float(call.cost["total"])
        else:  # still running: at least its call time so far
            cost += _billed_minutes(call, now) * settings.price_twilio_per_min
    resets = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return DailyUsage(calls=len(rows), minutes=minutes, cost=round(cost, 6), resets_at=resets)


def refusal(usage: DailyUsage, settings: Settings) -> str | None:
    """The reason a new call is refused today, with the figures; None when the user may call."""
    reset = f"the limit resets at midnight ({usage.resets_at.tzname()})"
    if settings.daily_max_calls and usage.calls >= settings.daily_max_calls:
        return (f"You have used {usage.calls} of {settings.daily_max_calls} calls today; {reset}.")
    if settings.daily_max_minutes and usage.minutes >= settings.daily_max_minutes:
        return (f"You have used {usage.minutes} of {settings.daily_max_minutes} call minutes today "
                f"({usage.calls} calls); {reset}.")
    if settings.daily_max_cost and usage.cost >= settings.daily_max_cost:
        return (f"You have spent {money(usage.cost)} of your {money(settings.daily_max_cost)} daily budget "
                f"({usage.calls} calls, {usage.minutes} minutes); {reset}.")
    return None


async def check_daily(db: Database, settings: Settings, owner_id: int) -> str | None:
    """Refusal text when `owner_id` is at a daily limit, else None."""
    if not (settings.daily_max_calls or settings.daily_max_minutes or settings.daily_max_cost):
        return None
    return refusal(await usage_today(db, settings, owner_id), settings)
