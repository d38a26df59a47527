"""Natural times typed in chat ("tomorrow 9am", "in 2 hours", "mon 8:30", ISO) -> an exact UTC instant.

dateparser does the language work; this module pins down what it leaves open: the user's timezone and
"now" (injected, so tests control the clock), dates in the future, and clear refusals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser


class WhenError(ValueError):
    """The time cannot be used; str() is the reason, fit to show the user."""


# dateparser reads "tomorrow at 9" as tomorrow at the current clock time; "at 9:00" it gets right.
_BARE_AT_HOUR = re.compile(r"\bat\s+(\d{1,2})\b(?![:.]\d|\s*[ap]\.?m\b)", re.IGNORECASE)
# "tomorrow 9" / "fri 14": dateparser takes the bare number for a day of the month; a number 0-23 right
# after a day word is an hour (unless a month name follows: "mon 12 jan").
_DAY_THEN_HOUR = re.compile(
    r"\b(today|tonight|tomorrow|(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day)?|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)\s+([01]?\d|2[0-3])\b"
    r"(?![:.]\d|\s*[ap]\.?m\b|\s*(?:st|nd|rd|th)\b|\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))",
    re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
EXAMPLES = '"tomorrow 9am", "in 2 hours", "mon 8:30" or "2026-03-04 09:00"'


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WhenError(f"{name!r} is not a timezone I know; use a name like Europe/Paris") from None


def _normalise(text: str) -> str:
    text = _BARE_AT_HOUR.sub(lambda m: f"at {m.group(1)}:00", text.strip())
    return _DAY_THEN_HOUR.sub(lambda m: f"{m.group(1)} at {m.group(2)}:00", text)


def parse_when(text: str, *, tz: str, now: datetime, max_ahead: timedelta) -> datetime:
    """The UTC instant `text` names in timezone `tz`, seen from `now` (aware); raise WhenError if unusable.

    Blocking for the first call (dateparser compiles its tables): call it from a thread on the event loop.
    """
    if not text.strip():
        raise WhenError(f"no time was given; write e.g. {EXAMPLES}")
    local_zone = zone(tz)
    # A naive base in the user's zone: dateparser reads RELATIVE_BASE as local time of TIMEZONE.
    base = now.astimezone(local_zone).replace(tzinfo=None)
    parsed = dateparser.parse(
        _normalise(text),
        languages=["en"],
        settings={
            "TIMEZONE": tz,
            "RETURN_AS_TIMEZONE_AWARE": True,
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": base,
        },
    )
    if parsed is None:
        raise WhenError(f"I could not read {text!r} as a time; write e.g. {EXAMPLES}")
    when = parsed.astimezone(UTC).replace(microsecond=0)
    if when <= now:
        raise WhenError(f"{describe(when, tz)} is in the past; give a time from now on")
    if when - now > max_ahead:
        limit = describe(now + max_ahead, tz)
        raise WhenError(f"{describe(when, tz)} is too far ahead; calls can be scheduled up to {limit}")
    return when


def describe(when: datetime, tz: str) -> str:
    """'Tue 6 Jan 2026 09:00 Europe/Paris (UTC+01:00)': the exact resolved time, echoed before saving."""
    local = when.astimezone(zone(tz))
    offset = local.strftime("%z")
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {tz} (UTC{offset[:3]}:{offset[3:]})"


def split_command(
    args: list[str], *, is_target: Callable[[str], bool], parse: Callable[[str], datetime]
) -> tuple[datetime, str, str]:
    """`/schedule <when> <number|contact> <task>` split where the when-words end and a callee starts.

    The first position whose token is a callee (`is_target`) and whose preceding words parse as a time
    wins; so "mon 8:30 +12125550100 ask hours" splits after "8:30". Returns (when, target, task).
    Raises WhenError (from `parse`, for the longest candidate) when no split works.
    """
    last_error: WhenError | None = None
    for i in range(1, len(args)):
        token = args[i]
        if not is_target(token) or _ISO_DATE.match(token):
            continue
        try:
            when = parse(" ".join(args[:i]))
        except WhenError as exc:
            last_error = exc
            continue
        task = " ".join(args[i + 1 :]).strip()
        if not task:
            raise WhenError("no task was given: say what the call is for after the number")
        return when, token, task
    if last_error is not None:
        raise last_error
    raise WhenError("write /schedule <when> <number or contact> <task>, e.g. "
                    "/schedule tomorrow 9am +12125550100 ask about opening hours")


def merge_number_tokens(args: list[str]) -> list[str]:
    """Join a number typed with spaces ("+1 212 555 0100") into one token, so the split sees one callee."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("+") and sum(ch.isdigit() for ch in token) < 8:
            j = i + 1
            while j < len(args) and re.fullmatch(r"[\d().-]+", args[j]) and \
                    sum(ch.isdigit() for ch in token) < 15:
                token += args[j]
                j += 1
            out.append(token)
            i = j
        else:
            out.append(token)
            i += 1
    return out
