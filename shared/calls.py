"""Vet and place an outbound call: the one path used by the bot's /call and by scheduled calls.

`prepare` checks everything a user can get wrong (number, contact name, task, concurrency) and composes
the prompt, raising `CallRefused` with a reason fit to show in chat. `place` stores the Call row and dials
through `Telephony`; a REST failure marks the row failed with the reason and publishes `CallEnded`, so
whoever shows the call (the bot's live card) reports it the same way as any other failed call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from loguru import logger
from sqlmodel import col, func, select

from shared import dnc, limits
from shared.bus import EventBus
from shared.config import Settings
from shared.db import Database
from shared.events import CALL_ENDED, CALL_STATUS, CallEnded, CallStatus
from shared.models import Call, Contact, User, utcnow
from shared.phone import NumberRefused, check_number
from shared.policy import check_task as check_policy
from shared.prompt import MAX_TASK_CHARS, Profile, compose

FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MIN_TASK_CHARS = 3


class CallRefused(ValueError):
    """The call may not be placed; str() is the reason, fit to show the user."""


class CallFailed(RuntimeError):
    """Twilio refused to place the call; the Call row is marked failed with this reason."""

    def __init__(self, reason: str, call: Call) -> None:
        super().__init__(reason)
        self.reason = reason
        self.call = call


class Dialer(Protocol):
    """What `place` needs of `shared.twilio_api.Telephony`."""

    async def place_call(self, *, to: str, call_id: int, record: bool, time_limit_s: int) -> str: ...


@dataclass(frozen=True)
class CallRequest:
    """A vetted call, ready to show for confirmation and then to place."""

    owner_id: int
    to_number: str
    pretty_number: str
    task: str
    system_prompt: str
    opening_line: str
    contact_name: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def callee(self) -> str:
        """How to name the callee in chat: "Aetna (+1 212-555-0100)" or just the number."""
        return f"{self.contact_name} ({self.pretty_number})" if self.contact_name else self.pretty_number


def profile_of(user: User | None) -> Profile:
    if user is None:
        return Profile()
    return Profile(full_name=user.full_name or user.first_name, organisation=user.organisation,
                   callback_number=user.callback_number, standing_facts=user.standing_facts)


class CallService:
    """Vets and places calls; shared by the bot and the scheduler."""

    def __init__(self, settings: Settings, db: Database, telephony: Dialer,
                 bus: EventBus | None = None) -> None:
        self.settings = settings
        self.db = db
        self.telephony = telephony
        self.bus = bus

    def check(self, raw_number: str) -> tuple[str, str]:
        """(E.164, pretty) of a number the agent may dial; raises CallRefused with the reason."""
        try:
            dialable = check_number(raw_number, allowed_regions=self.settings.allowed_country_codes,
                                    own_numbers=(self.settings.twilio_from_number,))
        except NumberRefused as exc:
            raise CallRefused(str(exc)) from None
        return dialable.e164, dialable.pretty

    async def resolve(self, owner_id: int, target: str) -> tuple[str, str, str]:
        """A saved contact name or a number -> (E.164, pretty, contact name or "")."""
        target = target.strip()
        if not target:
            raise CallRefused("no phone number or contact was given")
        if any(ch.isalpha() for ch in target):
            async with self.db.session() as s:
                contact = (await s.exec(select(Contact).where(
                    Contact.owner_id == owner_id, func.lower(Contact.name) == target.lower()))).first()
            if contact is None:
                raise CallRefused(f"there is no contact named {target!r}; save one with "
                                  f"/contacts add {target} +12125550100, or give the number")
            e164, pretty = self.check(contact.number)
            return e164, pretty, contact.name
        e164, pretty = self.check(target)
        return e164, pretty, ""

    def check_task(self, task: str) -> str:
        task = " ".join(task.split())
        if len(task) < MIN_TASK_CHARS:
            raise CallRefused("the task is missing: say what the agent should achieve on the call")
        if len(task) > MAX_TASK_CHARS:
            raise CallRefused(f"the task is too long ({len(task)} characters; at most {MAX_TASK_CHARS}): "
                              "shorten it to what the agent must achieve and the facts it needs")
        return task

    async def live_calls(self) -> int:
        """Calls not over yet; rows older than the call time limit are ignored (a lost status callback
        must not block calling forever)."""
        horizon = utcnow() - timedelta(minutes=self.settings.max_call_minutes + 5)
        async with self.db.session() as s:
            count = (await s.exec(select(func.count()).select_from(Call).where(
                col(Call.status).not_in(FINAL_STATUSES), col(Call.ended_at).is_(None),
                Call.created_at >= horizon))).one()
        return int(count)

    async def check_capacity(self) -> None:
        limit = self.settings.max_concurrent_calls
        if await self.live_calls() >= limit:
            raise CallRefused(f"{limit} call{'s are' if limit != 1 else ' is'} already in progress, the "
                              "most allowed at once; wait until one ends (or /hangup one) and try again")

    async def check_guards(self, owner_id: int, number: str, pretty: str = "") -> None:
        """The do-not-call list and the owner's daily limits (calls, minutes, cost)."""
        blocked = await dnc.find(self.db, number)
        if blocked is not None:
            raise CallRefused(dnc.refusal(blocked, pretty or number))
        over = await limits.check_daily(self.db, self.settings, owner_id)
        if over:
            raise CallRefused(over)

    async def prepare(self, owner_id: int, target: str, task: str) -> CallRequest:
        """Vet number, task, do-not-call list, daily limits and capacity; compose the prompt."""
        to, pretty, contact = await self.resolve(owner_id, target)
        task = self.check_task(task)
        await self.check_guards(owner_id, to, pretty)
        await self.check_capacity()
        async with self.db.session() as s:
            user = await s.get(User, owner_id)
        profile = profile_of(user)
        verdict = check_policy(task, profile.full_name)
        if not verdict.allowed:
            raise CallRefused(f"this task is refused: {verdict.reason}")
        composed = compose(task, profile, self.settings.agent_name)
        return CallRequest(owner_id=owner_id, to_number=to, pretty_number=pretty, task=task,
                           system_prompt=composed.system_prompt, opening_line=composed.opening_line,
                           contact_name=contact)

    async def place(self, request: CallRequest, *, chat_id: int | None = None,
                    card_message_id: int | None = None, scheduled_call_id: int | None = None) -> Call:
        """Store the Call row and dial. Raises CallRefused at the concurrency limit (checked again: time
        may have passed since `prepare`) and CallFailed when Twilio refuses."""
        await self.check_guards(request.owner_id, request.to_number, request.pretty_number)
        await self.check_capacity()
        async with self.db.session() as s:
            if await s.get(User, request.owner_id) is None:
                s.add(User(id=request.owner_id))
                await s.flush()
            call = Call(owner_id=request.owner_id, direction="outbound", to_number=request.to_number,
                        from_number=self.settings.twilio_from_number, task=request.task,
                        system_prompt=request.system_prompt, opening_line=request.opening_line,
                        options={**request.options, "contact": request.contact_name}, status="dialing",
                        chat_id=chat_id, card_message_id=card_message_id,
                        scheduled_call_id=scheduled_call_id)
            s.add(call)
            await s.commit()
            await s.refresh(call)
        assert call.id is not None
        # Published before the REST request: Twilio's own callbacks (initiated, ringing) may beat its answer.
        if self.bus is not None:
            await self.bus.publish(CALL_STATUS, CallStatus(call_id=call.id, status="dialing"))
        try:
            sid = await self.telephony.place_call(to=call.to_number, call_id=call.id,
                                                  record=self.settings.recording_enabled,
                                                  time_limit_s=self.settings.max_call_minutes * 60)
        except Exception as exc:  # any REST or network error: the reason goes to the user
            reason = _reason(exc)
            logger.bind(call_id=call.id).warning("placing the call failed: {}", reason)
            call = await self._mark(call.id, status="failed", end_reason=reason, ended_at=utcnow())
            if self.bus is not None:
                await self.bus.publish(CALL_ENDED, CallEnded(call_id=call.id or 0, status="failed",
                                                             reason=reason))
            raise CallFailed(reason, call) from exc
        # The status callback may already have moved the row on (e.g. to ringing): only fill the sid.
        return await self._mark(call.id, twilio_sid=sid)

    async def _mark(self, call_id: int, **values: Any) -> Call:
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
            assert call is not None
            for key, value in values.items():
                setattr(call, key, value)
            s.add(call)
            await s.commit()
            await s.refresh(call)
            return call


def _reason(exc: Exception) -> str:
    """Twilio's own message when it gave one (e.g. "The 'To' number is not a valid phone number")."""
    message = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    text = " ".join(str(message).split())
    if text.startswith("HTTP "):  # TwilioRestException's str() is a long multi-line banner
        text = text.split(" error: ", 1)[-1]
    return f"Twilio refused the call: {text}" + (f" (error {code})" if code else "")
