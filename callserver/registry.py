"""The live calls this process holds: one CallSession per call, shared by every media stream of that call.

A session belongs to the call, not to a WebSocket: when the call's TwiML is replaced (digits, transfer)
Twilio opens a new stream, which re-attaches to the same session with its history. The registry also
routes `call.command` events from the bus to the sessions it holds (other call servers ignore them), and
when a session's `run()` returns it hands the call to `lifecycle.finish_call` off the audio path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from callserver import lifecycle
from callserver.call_log import CallLog
from shared import events
from shared.bus import EventBus
from shared.config import Settings
from shared.db import Database
from shared.models import Call, User
from shared.twilio_api import Telephony

if TYPE_CHECKING:
    from callserver.session import CallInfo
    from callserver.twilio_stream import MediaStream

HANDOVER_GRACE_S = 5.0
"""How long a call server waits for the one holding an answered call to end it itself."""


class Session(Protocol):
    """What the registry needs of callserver.session.CallSession."""

    ended_reason: str

    async def run(self) -> None: ...
    async def attach(self, stream: MediaStream) -> None: ...
    def handle_command(self, cmd: events.CallCommand) -> None: ...
    def on_call_status(self, status: str, answered_by: str = "") -> None: ...
    def end(self, reason: str) -> None: ...


SessionFactory = Callable[["CallInfo", CallLog], Session]


class CallRefused(Exception):
    """No session for this stream: the call is unknown, already over, or the server is full."""


@dataclass
class Services:
    """Everything a call needs, owned by the app's lifespan."""

    settings: Settings
    bus: EventBus
    db: Database
    telephony: Telephony
    providers: Any = None


@dataclass
class LiveCall:
    call_id: int
    session: Session
    log: CallLog
    info: CallInfo
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0
    """Media streams attached so far (a new one means the TwiML was replaced, not the call ended)."""


class Registry:
    def __init__(self, services: Services, session_factory: SessionFactory | None = None) -> None:
        self.services = services
        self._factory = session_factory or self._default_factory
        self.calls: dict[int, LiveCall] = {}
        self._creating: dict[int, asyncio.Lock] = {}
        self._commands: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.finished: set[int] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._call_tasks: set[asyncio.Task[None]] = set()

    def _default_factory(self, info: CallInfo, log: CallLog) -> Session:
        from callserver.session import CallSession

        s = self.services
        return CallSession(info, settings=s.settings, providers=s.providers, log=log, telephony=s.telephony)

    # --- lifetime ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._commands = asyncio.create_task(self._route_commands(), name="registry-commands")
        await self._subscribed.wait()

    async def close(self, timeout_s: float = 10.0) -> None:
        """End every live call and wait for its end-of-call work, then stop routing commands."""
        for live in list(self.calls.values()):
            live.session.end("server shutting down")
        # Includes calls whose session is over but whose end-of-call work (summary) is still running.
        if self._call_tasks:
            await asyncio.wait(list(self._call_tasks), timeout=timeout_s)
        if self._background:  # end-of-call work for calls that never connected: let it finish
            await asyncio.wait(list(self._background), timeout=timeout_s)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._commands is not None:
            self._commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._commands

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run side work (status checks, REST hang-ups) referenced, and cancelled at close."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def active_count(self) -> int:
        return len(self.calls)

    def get(self, call_id: int) -> Session | None:
        live = self.calls.get(call_id)
        return live.session if live else None

    # --- sessions ---------------------------------------------------------------------------------
    async def session_for(self, call_id: int, call_sid: str = "") -> Session:
        """The call's live session; the first stream of a call creates it and starts `run()`."""
        live = self.calls.get(call_id)
        if live is not None:
            return live.session
        lock = self._creating.setdefault(call_id, asyncio.Lock())
        async with lock:
            live = self.calls.get(call_id)
            if live is None:
                live = await self._create(call_id, call_sid)
        self._creating.pop(call_id, None)
        return live.session

    async def _create(self, call_id: int, call_sid: str) -> LiveCall:
        if call_id in self.finished:
            raise CallRefused(f"call {call_id} is over")
        if len(self.calls) >= self.services.settings.max_concurrent_calls:
            raise CallRefused("too many concurrent calls")
        info, log = await self._load(call_id, call_sid)
        session = self._factory(info, log)
        live = LiveCall(call_id, session, log, info)
        self.calls[call_id] = live
        live.task = asyncio.create_task(self._run(live), name=f"call-{call_id}")
        self._call_tasks.add(live.task)
        live.task.add_done_callback(self._call_tasks.discard)
        return live

    async def _load(self, call_id: int, call_sid: str) -> tuple[CallInfo, CallLog]:
        from callserver.session import CallInfo

        async with self.services.db.session() as s:
            call = await s.get(Call, call_id)
            if call is None or call.status in lifecycle.FINAL_STATUSES:
                raise CallRefused(f"call {call_id} unknown or over")
            owner = await s.get(User, call.owner_id) if call.owner_id is not None else None
            seq = await lifecycle.last_seq(s, call_id)
        inbound = call.direction == "inbound"
        info = CallInfo(
            call_id=call_id, twilio_sid=call.twilio_sid or call_sid, direction=call.direction,
            to_number=call.to_number, from_number=call.from_number, task=call.task,
            system_prompt=call.system_prompt, opening_line="" if inbound else call.opening_line,
            owner_number=owner.callback_number if owner else "",
            greeting=call.opening_line if inbound else "", options=dict(call.options),
        )
        s = self.services
        return info, CallLog(call_id, bus=s.bus, db=s.db, start_seq=seq)

    async def _run(self, live: LiveCall) -> None:
        log = logger.bind(call_id=live.call_id)
        try:
            await live.session.run()
        except Exception:
            # The session has its own guards; this only keeps end-of-call work from being skipped.
            log.exception("call session crashed")
        finally:
            self.calls.pop(live.call_id, None)
            self.finished.add(live.call_id)
            live.done.set()
        try:
            await lifecycle.finish_call(self.services, live.call_id, log=live.log, info=live.info,
                                        usage=getattr(live.session, "usage", None),
                                        reason=getattr(live.session, "ended_reason", "") or "")
        except Exception:
            log.exception("end-of-call work failed")

    # --- status and commands ----------------------------------------------------------------------
    def on_call_status(self, call_id: int, status: str, answered_by: str = "") -> bool:
        """Forward a Twilio status/AMD callback to the live session; False if this process has none."""
        live = self.calls.get(call_id)
        if live is None:
            return False
        live.session.on_call_status(status, answered_by)
        return True

    async def forward_status(self, call_id: int, status: str, answered_by: str = "") -> None:
        """A callback for a call this process does not hold: the one that holds it (if any) applies it."""
        await self.services.bus.publish(events.CALL_COMMAND, events.CallCommand(
            call_id=call_id, kind="status", text=status, ref=answered_by))

    async def finish_unless_held_elsewhere(self, call: lifecycle.StatusChange, status: str) -> None:
        """End a call no session here holds. An answered call may be live on another call server, which
        ends it itself: give that one a moment, and only step in if the call is still not over."""
        if call.answered_at is not None:
            await asyncio.sleep(HANDOVER_GRACE_S)
            async with self.services.db.session() as s:
                row = await s.get(Call, call.id)
            if row is None or row.ended_at is not None:
                return
        await lifecycle.finish_call(self.services, call.id, status=status, reason=status)

    async def _route_commands(self) -> None:
        async with self.services.bus.subscribe(events.CALL_COMMAND) as sub:
            self._subscribed.set()
            async for _topic, event in sub:
                if not isinstance(event, events.CallCommand):
                    continue
                live = self.calls.get(event.call_id)
                if event.kind == "status":
                    if live is not None:
                        live.session.on_call_status(event.text, event.ref)
                    continue
                if live is None:
                    if event.kind == "hangup":
                        # Hang-up works from any process through REST, session or not.
                        self.spawn(self._hangup_by_rest(event.call_id))
                    continue
                live.log.action("command", command=event.kind, text=event.text, number=event.number)
                try:
                    live.session.handle_command(event)
                except Exception:
                    logger.bind(call_id=event.call_id).exception("command {} failed", event.kind)

    async def _hangup_by_rest(self, call_id: int) -> None:
        async with self.services.db.session() as s:
            call = await s.get(Call, call_id)
        if call is None or not call.twilio_sid or call.status in lifecycle.FINAL_STATUSES:
            return
        with contextlib.suppress(Exception):
            await self.services.telephony.hangup(call.twilio_sid)
