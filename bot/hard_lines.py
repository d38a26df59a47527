"""What the chat shows of hard calls (issue 7): hold, a person picking up, voicemail, time limits, dead air.

The call server publishes these as CallAction kinds (callserver.hardcalls); the live view turns them into
transcript lines here, keeps "On hold since 10:42" on the call card (in the owner's timezone) and posts a
message of its own when a person picks up after a hold, so the owner notices it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.db import Database
from shared.models import User

_KINDS = {"wait_on_hold", "amd_ignored", "off_hold", "voicemail", "voicemail_left", "silence", "fax",
          "limit_warning", "limit_reached"}


def is_hard(kind: str, detail: dict[str, Any]) -> bool:
    # limit_* kinds are shared with the cost guard (limit="cost"), which has lines of its own.
    return kind in _KINDS and detail.get("limit") != "cost"


def hard_line(kind: str, detail: dict[str, Any]) -> str | None:
    if kind in ("wait_on_hold", "amd_ignored"):
        return None  # on_hold follows wait_on_hold with the line; a wrong AMD verdict is bookkeeping
    if kind == "off_hold":
        return f"▶️ Off hold after {_minutes(detail.get('held_s', 0))}: a person is on the line"
    if kind == "voicemail":
        if detail.get("stage") == "greeting heard":
            return "📼 Voicemail greeting: waiting for the beep"
        return "📼 Voicemail: leaving the message"
    if kind == "voicemail_left":
        return f"📼 Voicemail left: \u201c{detail.get('message', '')}\u201d"
    if kind == "silence":
        return f"🔇 Dead silence on the line for {detail.get('seconds', '?')} s"
    if kind == "fax":
        return "📠 A fax machine answered: hanging up"
    what = "hold time" if detail.get("limit") == "hold" else "call time"
    if kind == "limit_warning":
        return f"⏳ About {detail.get('seconds_left', '?')} s left before the {what} limit"
    if kind == "limit_reached":
        then = "hanging up" if detail.get("limit") == "hold" else "the agent is saying goodbye"
        return f"⏹ The {what} limit is reached: {then}"
    return None


def picked_up_text(call_id: int, callee: str, held_s: float) -> str:
    return f"🙋 A person picked up on call #{call_id} to {callee} after {_minutes(held_s)} on hold."


def _minutes(seconds: Any) -> str:
    total = int(float(seconds or 0))
    return f"{total // 60} min {total % 60:02d} s" if total >= 60 else f"{total} s"


async def owner_clock(db: Database, user_id: int, at: datetime) -> str:
    """HH:MM of ``at`` in the owner's timezone (UTC when unset or unknown)."""
    async with db.session() as s:
        user = await s.get(User, user_id)
    try:
        tz: Any = ZoneInfo(user.timezone) if user is not None and user.timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%H:%M")
