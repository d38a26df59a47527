"""ScheduledCall rows: creation, listing, and conditional status moves that double as cross-process locks.

Every status change is `UPDATE ... WHERE id = ? AND status = <expected>`: whichever process's UPDATE
changes the row owns the step; the others see rowcount 0 and stand back. That is why several schedulers
may wake for the same job and still only one places the call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from shared.db import Database
from shared.models import Call, ScheduledCall

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
CANCELED, MISSED = "canceled", "missed"
OPEN = (PENDING, RUNNING)


def as_utc(when: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive (stored as UTC); make them aware again."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


async def create(db: Database, row: ScheduledCall) -> ScheduledCall:
    async with db.session() as s:
        s.add(row)
        await s.commit()
        await s.refresh(row)
    row.run_at = as_utc(row.run_at)
    return row


async def get(db: Database, sc_id: int) -> ScheduledCall | None:
    async with db.session() as s:
        row = await s.get(ScheduledCall, sc_id)
    if row is not None:
        row.run_at = as_utc(row.run_at)
    return row


async def list_open(db: Database, owner_id: int | None = None) -> list[ScheduledCall]:
    query = select(ScheduledCall).where(col(ScheduledCall.status).in_(OPEN))
    if owner_id is not None:
        query = query.where(ScheduledCall.owner_id == owner_id)
    async with db.session() as s:
        rows = list((await s.exec(query.order_by(col(ScheduledCall.run_at)))).all())
    for row in rows:
        row.run_at = as_utc(row.run_at)
    return rows


async def move(db: Database, sc_id: int, expected: str, new: str, *,
               last_call_id: int | None = None, if_run_at: datetime | None = None, **values: Any) -> bool:
    """Set status `new` (and `values`) only if the row is still `expected` (and still on the guards)."""
    stmt = update(ScheduledCall).where(col(ScheduledCall.id) == sc_id, col(ScheduledCall.status) == expected)
    if last_call_id is not None:
        stmt = stmt.where(col(ScheduledCall.last_call_id) == last_call_id)
    if if_run_at is not None:
        stmt = stmt.where(col(ScheduledCall.run_at) == if_run_at)
    async with db.session() as s:
        result = await s.exec(stmt.values(status=new, **values))  # type: ignore[call-overload]
        await s.commit()
    return bool(result.rowcount)


async def claim(db: Database, sc_id: int, now: datetime) -> bool:
    """The lock: pending -> running and one more attempt counted, for exactly one caller.

    The previous attempt's call is forgotten here: until this attempt has its own call, a running row with
    no call is what a cut-off claim looks like (`stale_claims`), and an old call's end can't settle it."""
    stmt = (update(ScheduledCall).where(col(ScheduledCall.id) == sc_id, col(ScheduledCall.status) == PENDING)
            .values(status=RUNNING, attempts=ScheduledCall.attempts + 1, last_call_id=None, claimed_at=now))
    async with db.session() as s:
        result = await s.exec(stmt)  # type: ignore[call-overload]
        await s.commit()
    return bool(result.rowcount)


async def set_last_call(db: Database, sc_id: int, call_id: int) -> bool:
    """Tie the attempt to its call; False if the claim was given up meanwhile (lease ran out)."""
    async with db.session() as s:
        result = await s.exec(update(ScheduledCall)  # type: ignore[call-overload]
                              .where(col(ScheduledCall.id) == sc_id, col(ScheduledCall.status) == RUNNING,
                                     col(ScheduledCall.last_call_id).is_(None))
                              .values(last_call_id=call_id))
        await s.commit()
    return bool(result.rowcount)


async def stale_claims(db: Database, claimed_before: datetime) -> list[ScheduledCall]:
    """Running rows whose claim never got a call: the process that claimed them stopped while dialing."""
    query = select(ScheduledCall).where(
        ScheduledCall.status == RUNNING, col(ScheduledCall.last_call_id).is_(None),
        (col(ScheduledCall.claimed_at) < claimed_before) | col(ScheduledCall.claimed_at).is_(None))
    async with db.session() as s:
        return list((await s.exec(query)).all())


async def by_last_call(db: Database, call_id: int) -> ScheduledCall | None:
    query = select(ScheduledCall).where(ScheduledCall.last_call_id == call_id)
    async with db.session() as s:
        row = (await s.exec(query)).first()
    if row is not None:
        row.run_at = as_utc(row.run_at)
    return row


async def get_call(db: Database, call_id: int) -> Call | None:
    async with db.session() as s:
        return await s.get(Call, call_id)


async def ended_attempts(db: Database) -> list[tuple[ScheduledCall, Call]]:
    """Running schedules whose last call is over: their call.ended may have been lost while down."""
    query = (select(ScheduledCall, Call).join(Call, col(Call.id) == col(ScheduledCall.last_call_id))
             .where(ScheduledCall.status == RUNNING, col(Call.ended_at).is_not(None)))
    async with db.session() as s:
        return [(sc, call) for sc, call in (await s.exec(query)).all()]
