"""What travels on the event bus between the call server and the bot: small pydantic models per topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

CALL_STATUS = "call.status"
CALL_TRANSCRIPT = "call.transcript"
CALL_ACTION = "call.action"
CALL_ENDED = "call.ended"
CALL_COMMAND = "call.command"


def _now() -> datetime:
    return datetime.now(UTC)


class CallStatus(BaseModel):
    """The call moved: dialing, ringing, in-progress (answered), on-hold, completed, busy, ..."""

    call_id: int
    status: str
    answered_by: str = ""
    detail: str = ""
    at: datetime = Field(default_factory=_now)


class TranscriptLine(BaseModel):
    """A final line said by the callee or the agent (agent lines cut by barge-in are interrupted)."""

    call_id: int
    seq: int
    speaker: Literal["callee", "agent", "owner", "system"]
    text: str
    offset_ms: int = 0
    interrupted: bool = False
    at: datetime = Field(default_factory=_now)


class CallAction(BaseModel):
    """A tool use or notable step: digits pressed, on hold, fact noted, transfer, hint received."""

    call_id: int
    kind: str
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=_now)


class CallEnded(BaseModel):
    """The call is over and its summary is stored on the Call row."""

    call_id: int
    status: str
    reason: str = ""
    at: datetime = Field(default_factory=_now)


class CallCommand(BaseModel):
    """From the chat to the call server holding the call."""

    call_id: int
    kind: Literal["hangup", "transfer", "say", "instruct", "hint", "answer", "bridge", "status"]
    """"status" is internal: a Twilio callback (text=status, ref=answered_by) that reached a call server
    other than the one holding the call's media stream."""
    """bridge: "ring me when a human answers", turned on for a call in progress."""
    text: str = ""
    number: str = ""
    ref: str = ""
    at: datetime = Field(default_factory=_now)


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    CALL_STATUS: CallStatus,
    CALL_TRANSCRIPT: TranscriptLine,
    CALL_ACTION: CallAction,
    CALL_ENDED: CallEnded,
    CALL_COMMAND: CallCommand,
}
