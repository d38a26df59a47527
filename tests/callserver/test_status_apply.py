"""lifecycle.apply_status writes with Core statements: the same rows and events as the ORM code it replaced.

The reference below is the replaced implementation, verbatim but for its name; both run the same callback
sequences (repeats, reordering, AMD, late sid) on their own database, SQLite and PostgreSQL."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlmodel import select

from callserver import lifecycle
from callserver.call_log import FINAL_STATUSES, status_advances
from shared import events
from shared.bus import InProcessBus
from shared.db import Database
from shared.migrate import upgrade_async
from shared.models import Call, CallEvent, utcnow


async def _orm_apply_status(
    services: Any, call_id: int, status: str, *, answered_by: str = "", detail: str = "",
    twilio_sid: str = "", duration_s: float | None = None,
) -> Call | None:
    async with services.db.session() as s:
        call = await s.get(Call, call_id)
        if call is None:
            return None
        changed = False
        if status and status_advances(call.status, status):
            call.status = status
            changed = True
            now = utcnow()
            if status == "in-progress" and call.answered_at is None:
                call.answered_at = now
            if status in FINAL_STATUSES and call.ended_at is None:
                call.ended_at = now
            if duration_s is not None:
                call.duration_s = duration_s
        if answered_by and answered_by != call.answered_by and call.status not in FINAL_STATUSES:
            call.answered_by = answered_by
            changed = True
        if twilio_sid and not call.twilio_sid:
            call.twilio_sid = twilio_sid
        if not changed:
            await s.commit()
            return None
        s.add(call)
        s.add(CallEvent(call_id=call_id, type="status",
                        payload={"status": call.status, "answered_by": call.answered_by, "detail": detail}))
        await s.commit()
    await services.bus.publish(events.CALL_STATUS, events.CallStatus(
        call_id=call_id, status=call.status, answered_by=call.answered_by, detail=detail))
    return call


SEQUENCES: list[tuple[str, list[dict[str, Any]]]] = [
    ("dialing", [{"status": "initiated"}, {"status": "ringing", "twilio_sid": "CA1"},
                 {"status": "ringing", "twilio_sid": "CA2"}, {"status": "in-progress"},
                 {"status": "", "answered_by": "human", "detail": "answering machine detection"},
                 {"status": "in-progress"}, {"status": "ringing"},
                 {"status": "completed", "duration_s": 42.0}, {"status": "completed", "duration_s": 43.0},
                 {"status": "", "answered_by": "machine_start"}]),
    ("dialing", [{"status": "busy"}, {"status": "ringing"}, {"status": "completed"}]),
    ("in-progress", [{"status": "", "answered_by": "machine_end_beep"}, {"status": "on-hold"},
                     {"status": "in-progress"}, {"status": "transferring"}, {"status": "transferred"},
                     {"status": "completed"}]),
    ("completed", [{"status": "in-progress", "twilio_sid": "CA9"}]),
]
MISSING = 10_000


async def _run(db: Database, use_orm: bool) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    bus = InProcessBus()
    services = SimpleNamespace(db=db, bus=bus)
    apply = _orm_apply_status if use_orm else lifecycle.apply_status
    returned: list[Any] = []
    async with bus.subscribe(events.CALL_STATUS) as sub:
        for initial, callbacks in SEQUENCES:
            async with db.session() as s:
                call = Call(to_number="+12125550100", status=initial, system_prompt="p" * 500)
                s.add(call)
                await s.commit()
                call_id = call.id
            assert call_id is not None
            for kw in callbacks:
                got = await apply(services, call_id, **kw)
                returned.append(None if got is None else
                                (got.id, got.status, got.answered_by, got.answered_at is not None))
        assert await apply(services, MISSING, "ringing") is None
        queued = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        published = [event.model_dump(exclude={"at"}) for _, event in queued]
    async with db.session() as s:
        calls = [c.model_dump(exclude={"created_at", "answered_at", "ended_at"}) | {
            "answered": c.answered_at is not None, "ended": c.ended_at is not None}
            for c in (await s.exec(select(Call).order_by(Call.id)))]
        query = select(CallEvent).order_by(CallEvent.id)
        evts = [e.model_dump(exclude={"at"}) for e in (await s.exec(query))]
    return returned, published, calls, evts


async def _equal_on(url_a: str, url_b: str) -> None:
    await upgrade_async(url_a)
    await upgrade_async(url_b)
    new_db, orm_db = Database(url_a), Database(url_b)
    try:
        new, orm = await _run(new_db, use_orm=False), await _run(orm_db, use_orm=True)
    finally:
        await new_db.close()
        await orm_db.close()
    assert len(new[3]) == 11 and new[1] and any(r is None for r in new[0])
    for a, b in zip(new, orm, strict=True):
        assert a == b


async def test_apply_status_stores_and_publishes_what_the_orm_did(tmp_path: Any) -> None:
    await _equal_on(f"sqlite:///{tmp_path}/new.db", f"sqlite:///{tmp_path}/orm.db")


async def test_apply_status_same_on_postgresql(pg_url: str, tmp_path: Any) -> None:
    # The reference runs on SQLite (its ORM path was the tested one); the new one on PostgreSQL.
    await _equal_on(pg_url, f"sqlite:///{tmp_path}/orm.db")
