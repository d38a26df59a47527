"""Database tables (SQLModel). Integer ids keep chat commands short: `/transcript 12`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=nullable), **kw)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(sa.DateTime(timezone=True), nullable=False))


def _owner_column() -> Column:  # type: ignore[type-arg]
    return Column(sa.BigInteger, sa.ForeignKey("user.id"), nullable=False, index=True)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class User(SQLModel, table=True):
    """A Telegram user known to the bot, with the profile used to compose prompts."""

    id: int = Field(sa_column=Column(sa.BigInteger, primary_key=True, autoincrement=False))
    first_name: str = ""
    username: str = ""
    allowed: bool = True
    timezone: str = "UTC"
    full_name: str = ""
    organisation: str = ""
    callback_number: str = ""
    standing_facts: str = ""
    confirm_calls: bool = True
    created_at: datetime = _created()


class Contact(SQLModel, table=True):
    """A name the owner saved for a number: `/call aetna ...`."""

    __table_args__ = (sa.UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(sa_column=_owner_column())
    name: str = Field(max_length=64)
    number: str = Field(max_length=20)
    created_at: datetime = _created()


class Call(SQLModel, table=True):
    """One phone call, outbound or inbound, from request to summary."""

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int | None = Field(
        default=None, sa_column=Column(sa.BigInteger, sa.ForeignKey("user.id"), nullable=True, index=True)
    )
    direction: str = "outbound"
    to_number: str = Field(max_length=20)
    from_number: str = Field(default="", max_length=20)
    task: str = ""
    system_prompt: str = Field(default="", sa_column=Column(sa.Text, nullable=False))
    opening_line: str = ""
    options: dict[str, Any] = _json(dict)
    status: str = Field(default="created", index=True)
    answered_by: str = ""
    twilio_sid: str | None = Field(default=None, max_length=64, unique=True, index=True)
    created_at: datetime = _created()
    answered_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()
    end_reason: str = ""
    duration_s: float | None = None
    outcome: str = ""
    summary: str = Field(default="", sa_column=Column(sa.Text, nullable=False))
    facts: list[dict[str, Any]] = _json(list)
    next_steps: list[str] = _json(list)
    recording_url: str = ""
    latency: dict[str, Any] = _json(dict)
    cost: dict[str, Any] = _json(dict)
    chat_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    card_message_id: int | None = None
    scheduled_call_id: int | None = Field(default=None, foreign_key="scheduledcall.id")


class TranscriptLine(SQLModel, table=True):
    """One line said on a call, in order; agent lines cut off by barge-in are marked interrupted."""

    __table_args__ = (sa.UniqueConstraint("call_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    seq: int
    speaker: str = Field(max_length=16)
    text: str = Field(sa_column=Column(sa.Text, nullable=False))
    offset_ms: int = 0
    interrupted: bool = False
    created_at: datetime = _created()


class CallEvent(SQLModel, table=True):
    """Anything else that happened on a call: status changes, tool uses, commands."""

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    type: str = Field(max_length=32)
    payload: dict[str, Any] = _json(dict)
    at: datetime = _created()


class ScheduledCall(SQLModel, table=True):
    """A call to place later, with its retry policy and the callee's calling window."""

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(sa_column=_owner_column())
    to_number: str = Field(max_length=20)
    task: str = ""
    run_at: datetime = Field(sa_column=Column(sa.DateTime(timezone=True), nullable=False))
    timezone: str = "UTC"
    attempts: int = 0
    max_attempts: int = 3
    retry_delay_minutes: int = 30
    window_start: str = "08:00"
    window_end: str = "20:00"
    window_days: str = "mon-fri"
    status: str = Field(default="pending", index=True)
    last_call_id: int | None = None
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=True))
    """When a process claimed the current attempt: a claim that never got its call is stale after a lease."""
    created_at: datetime = _created()


class DoNotCall(SQLModel, table=True):
    """A number the agent must not call: the callee asked on a call, or the owner added it (`/dnc`)."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=20, unique=True, index=True)
    source: str = Field(default="callee", max_length=16)
    """"callee" (asked on a call) or "owner" (added with /dnc add)."""
    reason: str = ""
    call_id: int | None = Field(default=None, foreign_key="call.id")
    added_by: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    created_at: datetime = _created()
