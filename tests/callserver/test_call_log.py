"""CallLog: publishes on the bus at once, batch-writes to the database, survives a database outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from callserver.call_log import DRAIN_DELAY_S, WRITE_DELAY_S, CallLog, CallLogWriter, status_advances
from shared import events
from shared.bus import InProcessBus
from shared.db import Database
from shared.models import Call, CallEvent, TranscriptLine


async def _call(db: Database, status: str = "created") -> int:
    async with db.session() as s:
        call = Call(to_number="+12125550100", status=status)
        s.add(call)
        await s.commit()
        assert call.id is not None
        return call.id


async def test_lines_status_actions_facts_are_published_and_stored(db: Database) -> None:
    bus = InProcessBus()
    call_id = await _call(db)
    async with bus.subscribe(events.CALL_TRANSCRIPT, events.CALL_STATUS, events.CALL_ACTION) as sub:
        log = CallLog(call_id, bus=bus, db=db)
        log.status("in-progress", answered_by="human")
        assert log.line("agent", "Hello there", offset_ms=10) == 1
        assert log.line("callee", "Hi", interrupted=False) == 2
        log.line("agent", "I was say", interrupted=True)
        log.fact("reference", "PA-123")
        log.action("digits", digits="2")
        log.turn_metrics(llm_first_token=250.0, first_audio=420.0)
        await log.flush()
        got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    topics = [t for t, _ in got]
    assert topics == [events.CALL_STATUS, events.CALL_TRANSCRIPT, events.CALL_TRANSCRIPT,
                      events.CALL_TRANSCRIPT, events.CALL_ACTION, events.CALL_ACTION, events.CALL_ACTION]
    assert got[6][1].kind == "turn_metrics"  # type: ignore[attr-defined]
    assert got[3][1].interrupted is True  # type: ignore[attr-defined]
    assert got[4][1].detail == {"label": "reference", "value": "PA-123"}  # type: ignore[attr-defined]
    async with db.session() as s:
        lines = (await s.exec(select(TranscriptLine).order_by(TranscriptLine.seq))).all()
        call = await s.get(Call, call_id)
        kinds = [e.type for e in (await s.exec(select(CallEvent).order_by(CallEvent.id))).all()]
    assert [(ln.seq, ln.speaker, ln.text, ln.interrupted) for ln in lines] == [
        (1, "agent", "Hello there", False), (2, "callee", "Hi", False), (3, "agent", "I was say", True)]
    assert call is not None and call.status == "in-progress" and call.answered_by == "human"
    assert call.answered_at is not None
    assert call.facts == [{"label": "reference", "value": "PA-123"}]
    assert kinds == ["status", "fact", "digits", "turn_metrics"]
    assert log.turns == [{"llm_first_token": 250.0, "first_audio": 420.0}]


class FlakyDatabase:
    """The real database behind a switch that makes every session fail while it is "down"."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = True
        self.attempts = 0

    def session(self) -> Any:
        self.attempts += 1
        if self.down:
            raise ConnectionError("database unreachable")
        return self.db.session()


async def test_database_outage_delays_but_never_loses_lines(db: Database) -> None:
    bus = InProcessBus()
    call_id = await _call(db)
    flaky = FlakyDatabase(db)
    writer = CallLogWriter(bus, flaky, max_backoff_s=0.02)  # type: ignore[arg-type]
    log = CallLog(call_id, bus=bus, db=db, writer=writer)
    async with bus.subscribe(events.CALL_TRANSCRIPT) as sub:
        for i in range(50):
            log.line("callee", f"line {i}")
        # The live transcript does not wait for the database.
        first = await sub.get(timeout=1)
        assert first[1].text == "line 0"  # type: ignore[attr-defined]
    flush = asyncio.create_task(log.flush())
    await asyncio.sleep(0.1)
    assert not flush.done() and flaky.attempts >= 2 and writer.write_failures >= 2
    back = datetime.now(UTC)
    flaky.down = False
    await asyncio.wait_for(flush, 2)
    async with db.session() as s:
        lines = (await s.exec(select(TranscriptLine))).all()
    assert sorted(ln.seq for ln in lines) == list(range(1, 51))
    # Stamped when logged, not when the database came back.
    assert max(ln.created_at for ln in lines).replace(tzinfo=UTC) < back


async def test_writer_tasks_end_when_idle(db: Database) -> None:
    bus = InProcessBus()
    call_id = await _call(db)
    log = CallLog(call_id, bus=bus, db=db)
    log.line("agent", "hi")
    await log.flush()
    await asyncio.sleep(0)
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not names & {"calllog-pub", "calllog-db"}
    await log.writer.close()


async def test_final_status_is_never_left(db: Database) -> None:
    bus = InProcessBus()
    call_id = await _call(db, status="completed")
    log = CallLog(call_id, bus=bus, db=db)
    log.status("in-progress")
    await log.flush()
    async with db.session() as s:
        call = await s.get(Call, call_id)
    assert call is not None and call.status == "completed"
    assert status_advances("ringing", "in-progress")
    assert not status_advances("in-progress", "ringing")
    assert status_advances("in-progress", "on-hold") and status_advances("on-hold", "in-progress")
    assert status_advances("ringing", "busy") and not status_advances("busy", "completed")
    assert status_advances("transferring", "transferred") and not status_advances("transferred", "completed")


async def test_publisher_and_writer_start_a_moment_after_the_first_item(db: Database) -> None:
    """A callee's line is logged right before the LLM request is built: the log's tasks must not run
    first (an ORM flush on the critical path), yet the line is out within DRAIN_DELAY_S, unflushed."""
    bus = InProcessBus()
    call_id = await _call(db)
    log = CallLog(call_id, bus=bus, db=db)
    async with bus.subscribe(events.CALL_TRANSCRIPT) as sub:
        log.line("callee", "Can you hear me?")
        log.line("callee", "Hello?")
        for _ in range(3):
            await asyncio.sleep(0)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert not names & {"calllog-pub", "calllog-db"} and sub.queue.empty()
        first = await sub.get(timeout=DRAIN_DELAY_S * 10)
        second = await sub.get(timeout=1)
    assert [first[1].text, second[1].text] == ["Can you hear me?", "Hello?"]  # type: ignore[attr-defined]
    for _ in range(int(WRITE_DELAY_S * 100) + 100):  # written WRITE_DELAY_S after the first line
        async with db.session() as s:
            lines = (await s.exec(select(TranscriptLine))).all()
        if len(lines) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(ln.text for ln in lines) == ["Can you hear me?", "Hello?"]
    await log.writer.close()


def _logged_rows(call_id: int) -> list[Any]:
    """What a call logs: lines (one interrupted, one with an offset), a status, facts, actions, figures."""
    bus = InProcessBus()
    rows: list[Any] = []

    class Capture(CallLogWriter):
        def write(self, item: Any) -> None:
            rows.append(item)

        def publish(self, topic: str, event: Any) -> None:
            pass

    log = CallLog(call_id, bus=bus, db=None, writer=Capture(bus, None))  # type: ignore[arg-type]
    log.status("in-progress", answered_by="human", detail="answered")
    log.line("agent", "Hello there, this is the assistant.", offset_ms=120)
    log.line("callee", "My card is 4111 1111 1111 1111")
    log.line("agent", "I was say", interrupted=True, offset_ms=3400)
    log.fact("reference", "PA-123")
    log.action("digits", digits="2", nested={"a": [1, 2.5, None, True]})
    log.turn_metrics(llm_first_token=250.04, first_audio=420)
    log.status("ringing")  # stale: never goes back
    log.fact("callback", "+1 212 555 0100")
    log.status("on-hold", answered_by="machine_start")
    return rows


async def _stored(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    async with db.session() as s:
        lines = [ln.model_dump() for ln in (await s.exec(select(TranscriptLine).order_by(TranscriptLine.id)))]
        evts = [e.model_dump() for e in (await s.exec(select(CallEvent).order_by(CallEvent.id)))]
        call = (await s.exec(select(Call))).one().model_dump(exclude={"created_at"})
    return lines, evts, call


def _orm_apply(call: Call, items: list[Any]) -> None:
    """The replaced writer's update of the Call, verbatim: on the ORM object, flushed by the session."""
    facts = list(call.facts)
    for item in items:
        if item.status and status_advances(call.status, item.status):
            call.status = item.status
            if item.status == "in-progress" and call.answered_at is None:
                call.answered_at = item.at
        if item.answered_by:
            call.answered_by = item.answered_by
        facts.extend(item.facts)
    call.facts = facts  # reassigned so the JSON column is seen as changed


async def test_rows_are_stored_as_the_orm_stored_them(db: Database, tmp_path: Any) -> None:
    """The writer inserts rows and updates the Call with Core statements; the ORM unit of work it replaced
    built a model per row (`model_validate`), loaded the Call and flushed both. Both ways, on two
    databases: every stored column is equal."""
    from shared.migrate import upgrade_async

    orm_url = f"sqlite:///{tmp_path}/orm.db"
    await upgrade_async(orm_url)
    orm_db = Database(orm_url)
    try:
        call_id = await _call(db)
        assert await _call(orm_db) == call_id
        rows = _logged_rows(call_id)
        writer = CallLogWriter(InProcessBus(), db)
        await writer._write(rows[:3])  # two batches: ids and order carry on across transactions
        await writer._write(rows[3:])
        # The replaced code path, as it was: a model per new row, then the Call's update.
        for batch in (rows[:3], rows[3:]):
            async with orm_db.session() as s:
                for item in batch:
                    if item.model is not None:
                        stamp = {TranscriptLine: "created_at", CallEvent: "at"}[item.model]
                        s.add(item.model.model_validate({**item.fields, stamp: item.at}))
                updates = [item for item in batch if item.status or item.facts]
                if updates:
                    call = await s.get(Call, call_id)
                    assert call is not None
                    _orm_apply(call, updates)
                    s.add(call)
                await s.commit()
        got, want = await _stored(db), await _stored(orm_db)
    finally:
        await orm_db.close()
    assert len(got[0]) == 3 and len(got[1]) == 7
    assert got[2]["status"] == "on-hold" and len(got[2]["facts"]) == 2
    assert got == want


async def test_writer_on_postgresql(pg_url: str) -> None:
    """The same writes against PostgreSQL (asyncpg): JSON payloads, timestamps, the Call's update."""
    from shared.migrate import upgrade_async

    await upgrade_async(pg_url)
    db = Database(pg_url)
    try:
        call_id = await _call(db)
        rows = _logged_rows(call_id)
        writer = CallLogWriter(InProcessBus(), db)
        for item in rows:
            writer.write(item)
        await writer.flush()
        lines, evts, call = await _stored(db)
    finally:
        await db.close()
    assert [(ln["seq"], ln["speaker"], ln["offset_ms"], ln["interrupted"]) for ln in lines] == [
        (1, "agent", 120, False), (2, "callee", 0, False), (3, "agent", 3400, True)]
    assert "4111" not in lines[1]["text"]
    assert [e["type"] for e in evts] == ["status", "fact", "digits", "turn_metrics", "status", "fact",
                                         "status"]
    assert evts[2]["payload"] == {"digits": "2", "nested": {"a": [1, 2.5, None, True]}}
    assert evts[3]["payload"] == {"llm_first_token": 250.0, "first_audio": 420.0}
    assert all(e["at"].tzinfo is not None and e["at"] == item.at for e, item in
               zip(evts, [r for r in rows if r.model is CallEvent], strict=True))
    assert call["status"] == "on-hold" and call["answered_by"] == "machine_start"
    assert call["facts"] == [{"label": "reference", "value": "PA-123"},
                             {"label": "callback", "value": "+1 212 555 0100"}]
