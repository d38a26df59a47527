"""What happens on a call, published on the bus and persisted without the audio path ever waiting.

`CallLog` methods are synchronous and only enqueue. One `CallLogWriter` per (bus, database) drains two
queues in background tasks: one publishes events on the bus (so a slow or failing database never delays
the live transcript in Telegram), the other writes rows in batches, one transaction per batch, retrying
with backoff while the database is down (a failed transaction is rolled back whole, so a retry never
duplicates rows and nothing is lost). Both tasks exit when their queue is empty and restart on the next
item, so no task outlives the work and none leaks after the last call.

A task starts a moment after the first item of a batch, not at once: a callee's line is logged when
their turn ends, right before the LLM request is built, and a task started at once would run first (a
database write, a bus round trip) and delay that request. DRAIN_DELAY_S later the LLM is still thinking.
The writer waits longer, WRITE_DELAY_S: a transaction costs ~1 ms of CPU whatever its size (session,
BEGIN, COMMIT, each a hop to the driver), and rows of every call then share one instead of one each.
Nothing waits for the database meanwhile: the live transcript goes out on the bus, `flush()` (the end of
every call, shutdown) writes at once, and a process crash loses what is queued either way.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger
from pydantic import BaseModel
from sqlalchemy import bindparam, insert, select

from callserver.masking import action_detail, masked
from shared import events
from shared.bus import EventBus
from shared.db import Database
from shared.models import Call, CallEvent, TranscriptLine, utcnow

BATCH = 500
DRAIN_DELAY_S = 0.02
"""Events wait this long before the publisher task starts (see the module docstring)."""
WRITE_DELAY_S = 0.5
"""Rows wait this long before the writer task starts (see the module docstring)."""
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_RANK = {"created": 0, "dialing": 1, "queued": 1, "initiated": 1, "ringing": 2, "in-progress": 3,
         "on-hold": 3, "transferring": 3, "transferred": 3}


def status_advances(old: str, new: str) -> bool:
    """Twilio retries and reorders callbacks: a final status is never left, and a call never goes back
    from answered to ringing. Equal ranks may alternate (in-progress <-> on-hold)."""
    if old == new or old in FINAL_STATUSES or old == "transferred":
        return False  # "transferred" is our end of a call that goes on bridged; its later "completed" is not
    if new in FINAL_STATUSES:
        return True
    return _RANK.get(new, 3) >= _RANK.get(old, 0)


@dataclass
class _Row:
    """One database change: a new row, or fields set / facts appended on the Call.

    A new row is kept as its model and column values, inserted by the writer: a SQLModel instance costs
    ~50 us, which the audio loop would pay for every line logged."""

    call_id: int
    model: type[TranscriptLine] | type[CallEvent] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    answered_by: str = ""
    facts: list[dict[str, Any]] = field(default_factory=list)
    at: datetime = field(default_factory=utcnow)


_STAMP = {TranscriptLine: "created_at", CallEvent: "at"}
"""Each row model's creation-time field."""
_INSERT = {model: insert(model.__table__) for model in _STAMP}  # type: ignore[attr-defined]
"""A Core INSERT of each row model's table (a Table, not the entity: no ORM bulk-insert layer)."""
_CALLS = Call.__table__  # type: ignore[attr-defined]
_STATE = select(_CALLS.c.id, _CALLS.c.status, _CALLS.c.answered_at, _CALLS.c.facts).where(
    _CALLS.c.id.in_(bindparam("ids", expanding=True)))
UPDATE_CALL = _CALLS.update().where(_CALLS.c.id == bindparam("call_id"))
"""SET takes the columns of the parameters given. Statements are built once: building one per batch or
callback (ORM-annotated columns, a fresh cache key) cost as much as running it."""
_Item = _Row | asyncio.Future[None]
_Event = tuple[str, BaseModel] | asyncio.Future[None]


class CallLogWriter:
    """Background publisher + batch writer shared by every call of the process."""

    _shared: dict[tuple[int, int], CallLogWriter] = {}

    def __init__(self, bus: EventBus, db: Database, *, max_backoff_s: float = 2.0) -> None:
        self.bus = bus
        self.db = db
        self.max_backoff_s = max_backoff_s
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._rows: asyncio.Queue[_Item] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._publish_due: asyncio.TimerHandle | None = None
        self._write_due: asyncio.TimerHandle | None = None
        self.write_failures = 0

    @classmethod
    def for_(cls, bus: EventBus, db: Database) -> CallLogWriter:
        """The one writer of this bus and database (created on first use)."""
        key = (id(bus), id(db))
        writer = cls._shared.get(key)
        if writer is None or writer.bus is not bus or writer.db is not db:
            writer = cls._shared[key] = cls(bus, db)
        return writer

    def publish(self, topic: str, event: BaseModel) -> None:
        self._events.put_nowait((topic, event))
        if self._publish_due is None and (self._publisher is None or self._publisher.done()):
            self._publish_due = asyncio.get_running_loop().call_later(DRAIN_DELAY_S, self._kick_publisher)

    def write(self, item: _Row) -> None:
        self._rows.put_nowait(item)
        if self._write_due is None and (self._writer is None or self._writer.done()):
            self._write_due = asyncio.get_running_loop().call_later(WRITE_DELAY_S, self._kick_writer)

    def _kick_publisher(self) -> None:
        if self._publish_due is not None:
            self._publish_due.cancel()
            self._publish_due = None
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop(), name="calllog-pub")

    def _kick_writer(self) -> None:
        if self._write_due is not None:
            self._write_due.cancel()
            self._write_due = None
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="calllog-db")

    async def flush(self) -> None:
        """Wait until everything enqueued so far is published and written (no drain delay)."""
        loop = asyncio.get_running_loop()
        published, written = loop.create_future(), loop.create_future()
        self._events.put_nowait(published)
        self._kick_publisher()
        self._rows.put_nowait(written)
        self._kick_writer()
        await asyncio.gather(published, written)

    async def close(self) -> None:
        """Drain, then forget this writer (its tasks have already ended once idle)."""
        await self.flush()
        self._shared.pop((id(self.bus), id(self.db)), None)

    async def _publish_loop(self) -> None:
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, asyncio.Future):
                if not item.done():
                    item.set_result(None)
                continue
            topic, event = item
            try:
                await self.bus.publish(topic, event)
            except Exception as exc:  # the bus is best effort; the database keeps the record
                logger.warning("bus publish of {} failed: {}", topic, exc)

    async def _write_loop(self) -> None:
        while not self._rows.empty():
            batch: list[_Item] = []
            while not self._rows.empty() and len(batch) < BATCH:
                batch.append(self._rows.get_nowait())
            rows = [item for item in batch if isinstance(item, _Row)]
            backoff = 0.05
            while rows:
                try:
                    await self._write(rows)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.write_failures += 1
                    logger.warning("call log write failed ({} rows), retrying in {:.2f}s: {}",
                                   len(rows), backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
            for item in batch:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)

    async def _write(self, rows: list[_Row]) -> None:
        # New rows go in as one Core executemany per table: the ORM's unit of work (an object per row,
        # identity map, INSERT .. RETURNING id to fill in each object) cost 3x the CPU per batch and
        # nothing reads those objects back. The dicts carry every column but the id, so the stored rows
        # are the ones the ORM stored (tests/callserver/test_call_log.py compares them).
        inserts: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        updates: dict[int, list[_Row]] = defaultdict(list)
        for item in rows:
            if item.model is not None:
                # Its time is when it was logged, not written.
                inserts[item.model].append({**item.fields, _STAMP[item.model]: item.at})
            if item.status or item.facts:
                updates[item.call_id].append(item)
        async with self.db.session() as session:
            for model, values in inserts.items():
                await session.execute(_INSERT[model], values)
            if updates:
                result = await session.execute(_STATE, {"ids": list(updates)})
                for call_id, status, answered_at, facts in result.all():
                    values = _apply(status, answered_at, facts, updates[call_id])
                    if values:
                        await session.execute(UPDATE_CALL, {"call_id": call_id, **values})
            await session.commit()


def _apply(status: str, answered_at: datetime | None, facts: list[dict[str, Any]],
           items: list[_Row]) -> dict[str, Any]:
    """The Call's columns that `items` change, from its stored status, answered_at and facts."""
    values: dict[str, Any] = {}
    new_facts = list(facts)
    for item in items:
        if item.status and status_advances(status, item.status):
            values["status"] = status = item.status
            if item.status == "in-progress" and answered_at is None:
                values["answered_at"] = answered_at = item.at
        if item.answered_by:
            values["answered_by"] = item.answered_by
        new_facts.extend(item.facts)
    if len(new_facts) != len(facts):
        values["facts"] = new_facts
    return values


class CallLog:
    """Per call. Every method is synchronous and never blocks: it enqueues."""

    def __init__(self, call_id: int, *, bus: EventBus, db: Database, writer: CallLogWriter | None = None,
                 start_seq: int = 0) -> None:
        self.call_id = call_id
        self.writer = writer or CallLogWriter.for_(bus, db)
        self._seq = start_seq
        self.turns: list[dict[str, float]] = []
        self.lines: list[tuple[str, str]] = []
        self.facts: list[dict[str, str]] = []
        self.log = logger.bind(call_id=call_id)

    def line(self, speaker: str, text: str, *, interrupted: bool = False, offset_ms: int = 0) -> int:
        """A final transcript line (secrets masked); returns its sequence number."""
        text = masked(text)
        self._seq += 1
        seq = self._seq
        self.lines.append((speaker, text))
        self.writer.write(_Row(self.call_id, TranscriptLine, {
            "call_id": self.call_id, "seq": seq, "speaker": speaker, "text": text, "offset_ms": offset_ms,
            "interrupted": interrupted}))
        self.writer.publish(events.CALL_TRANSCRIPT, events.TranscriptLine(
            call_id=self.call_id, seq=seq, speaker=speaker, text=text,  # type: ignore[arg-type]
            offset_ms=offset_ms, interrupted=interrupted))
        return seq

    def text_of(self, seq: int) -> tuple[str, str] | None:
        """(speaker, text) of line ``seq`` logged here: what an owner's hint on that line refers to."""
        index = seq - (self._seq - len(self.lines)) - 1
        return self.lines[index] if 0 <= index < len(self.lines) else None

    def status(self, status: str, *, answered_by: str = "", detail: str = "") -> None:
        payload = {"status": status, "answered_by": answered_by, "detail": detail}
        self.writer.write(_Row(self.call_id, CallEvent, {"call_id": self.call_id, "type": "status",
                                                         "payload": payload},
                               status=status, answered_by=answered_by))
        self.writer.publish(events.CALL_STATUS, events.CallStatus(
            call_id=self.call_id, status=status, answered_by=answered_by, detail=detail))

    def action(self, kind: str, **detail: Any) -> None:
        """A tool use or notable step (digits, on_hold, fact, transfer, end_call, ...)."""
        safe = action_detail(kind, {k: _jsonable(v) for k, v in detail.items()})
        self.writer.write(_Row(self.call_id, CallEvent, {"call_id": self.call_id, "type": kind[:32],
                                                         "payload": safe}))
        self.writer.publish(events.CALL_ACTION, events.CallAction(call_id=self.call_id, kind=kind,
                                                                  detail=safe))

    def fact(self, label: str, value: str) -> None:
        """A key fact obtained on the call: stored in Call.facts and announced as an action."""
        fact = {"label": label, "value": masked(value)}
        self.facts.append(fact)
        self.writer.write(_Row(self.call_id, facts=[fact]))
        self.action("fact", label=label, value=value)

    def turn_metrics(self, **ms: float) -> None:
        """One turn's latency figures (ms); the call's p50/p95 are stored when it ends."""
        figures = {k: round(float(v), 1) for k, v in ms.items()}
        self.turns.append(figures)
        self.log.info("turn latency {}", " ".join(f"{k}={v}" for k, v in figures.items()))
        self.writer.write(_Row(self.call_id, CallEvent, {"call_id": self.call_id, "type": "turn_metrics",
                                                         "payload": figures}))
        # Published too (the bot hides it; the demo and benchmarks show it live).
        self.writer.publish(events.CALL_ACTION, events.CallAction(call_id=self.call_id, kind="turn_metrics",
                                                                  detail=figures))

    async def flush(self) -> None:
        """Wait until everything enqueued so far is published and written."""
        await self.writer.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
