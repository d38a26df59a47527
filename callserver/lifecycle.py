"""A call's status over its life, and its end: summary, latency figures and `CallEnded`.

Twilio status callbacks are retried and may arrive out of order (twilio.com/docs/voice/api/call-resource
#statuscallback: SequenceNumber orders them), so a status is applied only if it moves the call forward
(`call_log.status_advances`); a repeat changes nothing and publishes nothing. Calls that never connect
(busy, no-answer, failed, canceled) end here without a session. The summary is written by the LLM after
the audio path is gone, so it never delays a live call.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import bindparam, func, insert
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from callserver import voicemail
from callserver.call_log import FINAL_STATUSES, UPDATE_CALL, CallLog, status_advances
from callserver.masking import masked
from shared import events
from shared.models import Call, CallEvent, TranscriptLine, utcnow

if TYPE_CHECKING:
    from callserver.registry import Services
    from callserver.session import CallInfo
    from callserver.usage import CallUsage

__all__ = ["FINAL_STATUSES", "StatusChange", "apply_status", "finish_call", "last_seq", "latency_stats"]

ATTEMPTS = 5
NO_CONNECT_OUTCOME = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "failed"}


def _aware(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


async def last_seq(session: AsyncSession, call_id: int) -> int:
    """Highest transcript seq stored for the call, so a new CallLog continues after it."""
    result = await session.exec(select(func.max(TranscriptLine.seq)).where(TranscriptLine.call_id == call_id))
    return int(result.one() or 0)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The call as a status callback left it: what its callers act on (publish, end a call not held)."""

    id: int
    status: str
    answered_by: str
    answered_at: datetime | None


_STATE = select(
    Call.status, Call.answered_by, Call.answered_at, Call.ended_at, Call.twilio_sid,
).where(col(Call.id) == bindparam("call_id"))
_INSERT_EVENT = insert(CallEvent.__table__)  # type: ignore[attr-defined]


async def apply_status(
    services: Services, call_id: int, status: str, *, answered_by: str = "", detail: str = "",
    twilio_sid: str = "", duration_s: float | None = None,
) -> StatusChange | None:
    """Move the stored call forward to `status` and publish it; None when nothing changed."""
    for attempt in range(ATTEMPTS):
        try:
            return await _apply_status(services, call_id, status, answered_by=answered_by, detail=detail,
                                       twilio_sid=twilio_sid, duration_s=duration_s)
        except OperationalError as exc:
            # SQLite refuses a read-then-write transaction when another connection wrote in between
            # ("database is locked"); the whole transaction was rolled back, so it is safe to redo.
            if attempt == ATTEMPTS - 1:
                raise
            logger.bind(call_id=call_id).debug("status write retried: {}", exc)
            await asyncio.sleep(0.02 * (attempt + 1))
    return None


async def _apply_status(
    services: Services, call_id: int, status: str, *, answered_by: str, detail: str, twilio_sid: str,
    duration_s: float | None,
) -> StatusChange | None:
    # Core statements on one connection, not the ORM: every callback (Twilio sends 4-6 per call, and
    # retries) loaded the whole Call (prompt, JSON columns) into an ORM object and flushed it through the
    # unit of work, ~2 ms of CPU on the loop the audio shares. The five columns read here are all the
    # decision needs; what is written is what the ORM wrote (tests/callserver/test_webhooks.py).
    async with services.db.engine.begin() as conn:
        row = (await conn.execute(_STATE, {"call_id": call_id})).first()
        if row is None:
            return None
        old_status, old_answered_by, answered_at, ended_at, old_sid = row
        values: dict[str, Any] = {}
        new_status, new_answered_by = old_status, old_answered_by
        if status and status_advances(old_status, status):
            values["status"] = new_status = status
            now = utcnow()
            if status == "in-progress" and answered_at is None:
                values["answered_at"] = answered_at = now
            if status in FINAL_STATUSES and ended_at is None:
                values["ended_at"] = now
            if duration_s is not None:
                values["duration_s"] = duration_s
        if answered_by and answered_by != old_answered_by and new_status not in FINAL_STATUSES:
            values["answered_by"] = new_answered_by = answered_by
        changed = bool(values)
        if twilio_sid and not old_sid:
            values["twilio_sid"] = twilio_sid
        if values:
            await conn.execute(UPDATE_CALL, {"call_id": call_id, **values})
        if not changed:
            return None
        await conn.execute(_INSERT_EVENT, {
            "call_id": call_id, "type": "status", "at": utcnow(),
            "payload": {"status": new_status, "answered_by": new_answered_by, "detail": detail}})
    await services.bus.publish(events.CALL_STATUS, events.CallStatus(
        call_id=call_id, status=new_status, answered_by=new_answered_by, detail=detail))
    return StatusChange(call_id, new_status, new_answered_by, answered_at)


def latency_stats(turns: list[dict[str, float]]) -> dict[str, Any]:
    """p50/p95 (nearest rank) of every per-turn figure, plus how many turns were measured."""
    names = sorted({name for turn in turns for name in turn})
    stats: dict[str, Any] = {"turns": len(turns)}
    for name in names:
        values = sorted(turn[name] for turn in turns if name in turn)
        stats[name] = {"p50": _rank(values, 0.50), "p95": _rank(values, 0.95), "n": len(values)}
    return stats


def _rank(values: list[float], q: float) -> float:
    return values[max(0, math.ceil(q * len(values)) - 1)]


HANDED_OVER = ("transferred to", "bridged to")
"""Session end reasons that mean the call went on without the agent."""


async def finish_call(services: Services, call_id: int, *, log: CallLog | None = None,
                      info: CallInfo | None = None, reason: str = "", status: str = "",
                      usage: CallUsage | None = None) -> None:
    """Store the call's end (status, duration, summary, facts, latency) and publish CallEnded."""
    blog = logger.bind(call_id=call_id)
    if log is not None:
        await log.flush()
    async with services.db.session() as s:
        call = await s.get(Call, call_id)
        if call is None:
            return
        query = select(TranscriptLine).where(TranscriptLine.call_id == call_id).order_by(TranscriptLine.seq)
        lines = [(ln.speaker, ln.text) for ln in (await s.exec(query)).all()]
        # Steps the call itself left open (an ask_owner nobody answered): never left to the summary's luck.
        open_steps = [str(e.payload.get("text", "")) for e in (await s.exec(select(CallEvent).where(
            CallEvent.call_id == call_id, CallEvent.type == "next_step").order_by(CallEvent.id))).all()]
    handed_over = call.status in ("transferring", "transferred") or reason.startswith(HANDED_OVER)
    if handed_over and not status:
        # The agent handed the call over (transfer, bridge): that is its end for us, even when Twilio's
        # "completed" for the bridged call arrived before this ran.
        final = "transferred"
    elif status or call.status in FINAL_STATUSES:
        final = status or call.status
    else:
        final = "completed"
    facts = list(call.facts)
    outcome, summary, next_steps = NO_CONNECT_OUTCOME.get(final, ""), "", []
    if not outcome and call.answered_by.startswith("machine") and not lines:
        outcome = "voicemail"
    if not outcome and reason == voicemail.LEFT_REASON:  # the message itself is the summary
        outcome, summary = "voicemail", voicemail.summary_of(lines)
    if not outcome and info is not None and services.providers is not None and lines:
        try:
            from callserver.summary import summarize

            llm = services.providers.llm if usage is None else usage.meter_llm(services.providers.llm)
            result = await summarize(llm, info, lines, facts)
            outcome, summary = result.outcome, masked(result.summary)
            next_steps, facts = masked(list(result.next_steps)), _merge_facts(facts, masked(result.facts))
        except Exception as exc:  # a failed summary must not lose the call's end
            blog.warning("summary failed: {}", exc)
    if not outcome:
        outcome = "failed" if not lines else "partial"
    next_steps = list(next_steps) + [step for step in open_steps if step and step not in next_steps]
    latency = latency_stats(log.turns) if log is not None else {}
    billed = None
    if usage is not None:
        from callserver.usage import final_cost

        billed = await final_cost(services, call, usage, wait=final != "transferred")
    async with services.db.session() as s:
        call = await s.get(Call, call_id)
        if call is None:
            return
        now = utcnow()
        if status_advances(call.status, final) or final == "transferred":
            call.status = final
        call.ended_at = _aware(call.ended_at) or now
        answered = _aware(call.answered_at)
        if billed is not None:  # Twilio's billed duration, and the cost that goes with it
            call.duration_s = billed[0] if call.duration_s is None else call.duration_s
            call.cost = billed[1]
        if call.duration_s is None:
            call.duration_s = round((call.ended_at - answered).total_seconds(), 1) if answered else 0.0
        call.end_reason = reason or call.end_reason or final
        call.outcome, call.summary, call.facts, call.next_steps = outcome, summary, facts, next_steps
        if latency.get("turns"):
            call.latency = latency
        s.add(call)
        s.add(CallEvent(call_id=call_id, type="ended",
                        payload={"status": call.status, "reason": call.end_reason, "outcome": outcome}))
        await s.commit()
        stored_status = call.status
    if latency.get("turns"):
        blog.info("call latency {}", latency)
    await services.bus.publish(events.CALL_ENDED, events.CallEnded(
        call_id=call_id, status=stored_status, reason=call.end_reason))


def _merge_facts(stored: list[dict[str, Any]], found: Any) -> list[dict[str, Any]]:
    """Facts noted during the call first; the summary may add ones the agent forgot to note."""
    out = list(stored)
    seen = {(f.get("label"), f.get("value")) for f in stored}
    for fact in found or []:
        item = dict(fact) if isinstance(fact, dict) else {"label": "fact", "value": str(fact)}
        if (item.get("label"), item.get("value")) not in seen:
            out.append(item)
            seen.add((item.get("label"), item.get("value")))
    return out
