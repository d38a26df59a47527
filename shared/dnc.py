"""The do-not-call list: a callee who asks not to be called again is never dialed again.

Detection is deterministic (patterns over the callee's own words), so it does not depend on the LLM
noticing. It is deliberately about *this caller calling again*: "don't call me before 9" or "don't call
the other office" are not opt-outs, "please don't call this number again" and "take me off your list" are.
The list is global to the installation (a person who opted out did so for this service, whoever the
owner is); owners see and edit it with /dnc.
"""

from __future__ import annotations

import re

from sqlmodel import col, select

from shared.db import Database
from shared.models import DoNotCall

_DONT_CALL = re.compile(
    r"\b(?:do\s*n[o'’]?t|never|stop|quit)\s+(?:ever\s+)?(?:call(?:ing)?|ring(?:ing)?|phon(?:e|ing)|contact(?:ing)?)"
    r"\s+(?:me|us|this\s+(?:number|line|house|phone)|here|my\s+(?:number|phone))"
    r"(?:\s+(?:ever\s+)?(?:again|anymore|any\s+more|in\s+the\s+future))?",
    re.I,
)
_LIST = re.compile(
    r"\b(?:put|add|place)\s+(?:me|us|this\s+number|my\s+number)\s+(?:on|to)\s+(?:your|the|a)\s+"
    r"(?:do[\s-]*not[\s-]*call|dnc|no[\s-]*call)\s+list\b|"
    r"\b(?:remove|take|delete|strike)\s+(?:me|us|this\s+number|my\s+number)\s+(?:off|from)\s+"
    r"(?:your|the|this)\s+(?:\w+\s+)?(?:list|database|records?|system)\b|"
    r"\b(?:unsubscribe|opt\s+out|opt-out)\b|\bdo[\s-]*not[\s-]*call\s+list\b|"
    r"\bdo\s*n[o'’]?t\s+(?:want|wish)\s+(?:you\s+to\s+call|to\s+be\s+called|any\s*more\s+calls|"
    r"these\s+calls)|\bno\s+more\s+calls\b",
    re.I,
)
_LIMITED = re.compile(r"^\s*(?:before|after|until|on|at|during|between|at\s+work|today|tonight|tomorrow|"
                      r"this\s+(?:morning|afternoon|evening|week))\b", re.I)

ACK_NOTE = ("[The callee asked not to be called again. Their number is now on the do-not-call list. "
            "Apologise briefly, confirm they will not be called again, say goodbye and end the call.]")


def asks_not_to_be_called(text: str) -> bool:
    """The callee asks this caller to stop calling them (not: to call at another time)."""
    if _LIST.search(text):
        return True
    for match in _DONT_CALL.finditer(text):
        rest = text[match.end():]
        # "don't call me before 9": a time restriction, not an opt-out, unless "again" settles it.
        if re.search(r"again|anymore|any more|future", match.group(0), re.I) or not _LIMITED.match(rest):
            return True
    return False


async def find(db: Database, number: str) -> DoNotCall | None:
    async with db.session() as s:
        return (await s.exec(select(DoNotCall).where(DoNotCall.number == number))).first()


async def add(db: Database, number: str, *, source: str, reason: str = "", call_id: int | None = None,
              added_by: int | None = None) -> DoNotCall:
    """Put `number` (E.164) on the list; a number already there keeps its first entry."""
    async with db.session() as s:
        row = (await s.exec(select(DoNotCall).where(DoNotCall.number == number))).first()
        if row is None:
            row = DoNotCall(number=number, source=source, reason=reason[:200], call_id=call_id,
                            added_by=added_by)
            s.add(row)
            await s.commit()
            await s.refresh(row)
        return row


async def remove(db: Database, number: str) -> bool:
    async with db.session() as s:
        row = (await s.exec(select(DoNotCall).where(DoNotCall.number == number))).first()
        if row is None:
            return False
        await s.delete(row)
        await s.commit()
        return True


async def entries(db: Database) -> list[DoNotCall]:
    async with db.session() as s:
        return list((await s.exec(select(DoNotCall).order_by(col(DoNotCall.created_at)))).all())


def refusal(row: DoNotCall, pretty: str) -> str:
    """Why /call refuses the number, and how the owner can undo it."""
    when = row.created_at.strftime("%Y-%m-%d")
    who = (f"the person who answered asked not to be called again (call #{row.call_id}, {when})"
           if row.source == "callee" else f"you put it on the do-not-call list on {when}")
    return (f"{pretty} is on the do-not-call list: {who}. If that is a mistake, "
            f"remove it with /dnc remove {row.number}")
