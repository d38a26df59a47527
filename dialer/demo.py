"""`dialer demo`: a real call through the real call server, with every outside service emulated by sim/.

`CallStack` is the rehearsal rig (also used by the end-to-end tests and the benchmarks): the emulators,
the call server on its own port with PUBLIC_BASE_URL pointing at it, a migrated SQLite database and an
in-process bus; `place_call` goes through the same `CallService` path as the bot's /call. `run_demo`
scripts the agent's LLM for a scenario, places the call and prints it live with rich.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from callserver.app import create_app
from shared import events
from shared.bus import InProcessBus
from shared.calls import CallService
from shared.config import Settings, load_settings
from shared.db import Database
from shared.migrate import upgrade_async
from shared.models import Call, User
from shared.twilio_api import Telephony
from sim.__main__ import FROM_NUMBER, EmulatorStack
from sim.llm_script import Brain, Rule, ScriptedBrain, ToolCall
from sim.server import serve
from sim.twilio.network import Call as PhoneCall

OWNER_ID = 1001
OWNER_NUMBER = "+12125550177"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CallStack:
    """Emulators + call server + database + bus; every event on the bus is kept in `events`."""

    emulators: EmulatorStack
    settings: Settings
    db: Database
    bus: InProcessBus
    app: FastAPI
    url: str
    telephony: Telephony
    calls: CallService
    events: list[tuple[str, BaseModel]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def network(self) -> Any:
        return self.emulators.network

    @property
    def registry(self) -> Any:
        return self.app.state.registry

    async def place_call(self, to: str, task: str, **options: Any) -> int:
        """Vet, store and dial exactly as the bot does; returns the call id."""
        request = await self.calls.prepare(OWNER_ID, to, task)
        if options:
            request = type(request)(**{**request.__dict__, "options": options})
        call = await self.calls.place(request, chat_id=OWNER_ID)
        assert call.id is not None
        return call.id

    def phone_call(self, call_id: int) -> PhoneCall:
        """The phone network's view of the call: what the callee heard and said, marks, clears, digits."""
        for call in self.network.calls.values():
            if call.params.url and call.params.url.endswith(f"call_id={call_id}"):
                return call  # type: ignore[no-any-return]
        raise KeyError(call_id)

    def of(self, call_id: int, topic: str) -> list[Any]:
        return [ev for t, ev in self.events if t == topic and getattr(ev, "call_id", None) == call_id]

    async def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        async with asyncio.timeout(timeout_s):
            while not (result := predicate()):
                self._changed.clear()
                await self._changed.wait()
        return result

    async def wait_end(self, call_id: int, timeout_s: float = 60.0) -> Call:
        await self.wait_for(lambda: self.of(call_id, events.CALL_ENDED), timeout_s)
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
        assert call is not None
        return call

    async def _record(self) -> None:
        async with self.bus.subscribe(*events.TOPIC_MODELS) as sub:
            self._changed.set()
            async for item in sub:
                self.events.append(item)
                self._changed.set()


@contextlib.asynccontextmanager
async def call_stack(*, speed: float = 1.0, brain: Brain | None = None, llm: str = "openai",
                     tts: str = "elevenlabs", db_url: str = "", llm_ttft_s: float = 0.25,
                     llm_tokens_per_s: float = 60.0, **overrides: Any) -> AsyncIterator[CallStack]:
    """Start the whole rig; `overrides` are Settings field values (e.g. deepgram_endpointing_ms=300)."""
    emulators = EmulatorStack(speed=speed, brain=brain or ScriptedBrain(), llm_ttft_s=llm_ttft_s,
                              llm_tokens_per_s=llm_tokens_per_s, with_telegram=False)
    with tempfile.TemporaryDirectory(prefix="dialer-demo-") as tmp:
        url = db_url or f"sqlite:///{Path(tmp) / 'dialer.db'}"
        async with emulators.running():
            port = free_port()
            public = f"http://127.0.0.1:{port}"
            values: dict[str, Any] = {k.lower(): v for k, v in emulators.env().items()}
            values.update(public_base_url=public, port=port, database_url=url, llm_provider=llm,
                          tts_provider=tts, telegram_allowed_users=str(OWNER_ID), max_concurrent_calls=200)
            values.update(overrides)
            settings = load_settings(**values)
            await upgrade_async(url)
            db = Database(url)
            async with db.session() as s:
                s.add(User(id=OWNER_ID, first_name="Sam", full_name="Sam Lee", callback_number=OWNER_NUMBER))
                await s.commit()
            bus = InProcessBus()
            telephony = Telephony(settings)
            app = create_app(settings, bus=bus, db=db, telephony=telephony)
            emulators.network.set_voice_url(FROM_NUMBER, f"{public}/twilio/voice")
            stack = CallStack(emulators, settings, db, bus, app, public, telephony,
                              CallService(settings, db, telephony, bus))
            recorder = asyncio.create_task(stack._record())
            await stack._changed.wait()
            try:
                async with serve(app, port=port):
                    yield stack
            finally:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder
                await telephony.close()
                await db.close()


# --- the scripted agent for each demo scenario ---------------------------------------------------

TASKS = {
    "prior_auth": ("+12125550100", "Request a new prior authorisation for member W123456789, born March 4 "
                   "1980, and get the reference number."),
    "friendly_human": ("+12125550101", "Confirm the appointment on Tuesday at 3 pm."),
    "interrupting_human": ("+12125550102", "Confirm the appointment on Tuesday at 3 pm."),
    "voicemail": ("+12125550103", "Ask Sam to call back about Tuesday's appointment."),
    "busy": ("+12125550104", "Confirm the appointment on Tuesday at 3 pm."),
    "no_answer": ("+12125550105", "Confirm the appointment on Tuesday at 3 pm."),
}


def demo_brain() -> ScriptedBrain:
    """The agent's "LLM" for the demo scenarios: rules over what the callee just said."""
    bye = [ToolCall("end_call", {"reason": "task done"})]
    return ScriptedBrain([
        # IVR menus: speak the option (the menu accepts spoken digits).
        Rule(user=r"new prior authori[sz]ation request, press (\w+)", say="{1}.", priority=6),
        Rule(user=r"for prior authori[sz]ation, press (\w+)", say="{1}.", priority=5),
        # Hold music and announcements: stay silent.
        Rule(user=r"thank you for holding|please hold|important to us", say="", priority=4),
        Rule(user=r"member id", say="The member ID is W 1 2 3 4 5 6 7 8 9.", priority=3),
        Rule(user=r"date of birth", say="March 4th, 1980.", priority=3),
        Rule(user=r"reference number is ([A-Z]{2}-?\s?\d+)", priority=7,
             say="Thank you, I've noted reference {1}. That's everything I needed. Goodbye!",
             calls=[ToolCall("note_fact", {"label": "reference number", "value": "{1}"}), *bye]),
        Rule(user=r"who did you say|who's this|who is this", say="I'm Alex, an AI assistant calling for Sam "
             "Lee about the appointment on Tuesday at 3 pm.", priority=2),
        Rule(user=r"\b(sure|works|yes)\b", say="Great, so Tuesday at 3 pm is confirmed. Thank you!",
             priority=2),
        Rule(user=r"get to the point|what do you want|what is this about", priority=3,
             say="Of course. Sam Lee's appointment is on Tuesday at 3 pm: does that still work for you?"),
        Rule(user=r"goodbye|bye", say="Goodbye!", calls=bye, priority=5),
        Rule(user=r"leave a message|after the (tone|beep)|can't take your call", priority=4,
             say="Hi Sam, this is Alex for Sam Lee about Tuesday's appointment. Please call back on "
                 f"{OWNER_NUMBER}. Thanks, goodbye!", calls=bye),
    ], default="")


# --- live printing ---------------------------------------------------------------------------------

# The running cost ticks every few seconds and "fact" repeats note_fact: both are summed up at the end.
QUIET_ACTIONS = frozenset({"cost", "fact", "command"})


def _render(console: Any, topic: str, event: Any, t0: float) -> None:
    at = f"[dim]{event.at.timestamp() - t0:6.2f}s[/]"
    if topic == events.CALL_TRANSCRIPT:
        who = "[bold cyan]agent [/]" if event.speaker == "agent" else "[bold yellow]callee[/]"
        cut = "  [bold red]<- cut off (barge-in)[/]" if event.interrupted else ""
        console.print(f"{at} {who} {event.text}{cut}")
    elif topic == events.CALL_STATUS:
        extra = f" ({event.answered_by})" if event.answered_by else ""
        console.print(f"{at} [magenta]status[/] {event.status}{extra} {event.detail}".rstrip())
    elif topic == events.CALL_ACTION and event.kind == "turn_metrics":
        figures = "  ".join(f"{k.removesuffix('_ms')}={v:.0f}ms" for k, v in event.detail.items())
        console.print(f"{at} [dim]latency  {figures}[/]")
    elif topic == events.CALL_ACTION and event.kind in QUIET_ACTIONS:
        return
    elif topic == events.CALL_ACTION:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in ("", None))
        console.print(f"{at} [green]tool/action[/] {event.kind} {detail}".rstrip())
    elif topic == events.CALL_ENDED:
        console.print(f"{at} [magenta]ended[/] {event.status} {event.reason}".rstrip())


async def run_demo(scenario: str = "prior_auth", llm: str = "openai", *, speed: float = 1.0,
                   console: Any = None, timeout_s: float = 300.0) -> Call:
    """Place one call to a scripted callee and print it live; returns the stored Call."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if scenario not in TASKS:
        raise SystemExit(f"unknown scenario {scenario!r}; choose one of {', '.join(TASKS)}")
    number, task = TASKS[scenario]
    async with call_stack(speed=speed, brain=demo_brain(), llm=llm) as stack:
        console.rule(f"[bold]dialer demo[/]: {scenario} via {llm} (every service emulated, speed x{speed:g})")
        console.print(f"[bold]Task:[/] {task}\n")
        t0 = time.time()
        call_id = await stack.place_call(number, task)

        async def show() -> None:
            shown = 0
            while True:
                seen = shown
                await stack.wait_for(lambda n=seen: len(stack.events) > n, timeout_s)  # type: ignore[misc]
                for topic, event in stack.events[seen:]:
                    if getattr(event, "call_id", None) == call_id:
                        _render(console, topic, event, t0)
                shown = len(stack.events)

        printer = asyncio.create_task(show())
        try:
            call = await stack.wait_end(call_id, timeout_s)
            await asyncio.sleep(0.05)
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await printer
    table = Table(title="per-call latency (ms)", show_lines=False)
    for column in ("figure", "p50", "p95", "turns"):
        table.add_column(column)
    for name, fig in call.latency.items():
        if isinstance(fig, dict):
            table.add_row(name, f"{fig['p50']:.0f}", f"{fig['p95']:.0f}", str(fig["n"]))
    console.print(table)
    console.rule("[bold]summary[/]")
    console.print(f"[bold]outcome:[/] {call.outcome}   [bold]status:[/] {call.status}   "
                  f"[bold]duration:[/] {call.duration_s or 0:.0f}s (call time)")
    console.print(call.summary or "(no summary)")
    for fact in call.facts:
        console.print(f"  - {fact.get('label')}: {fact.get('value')}")
    for step in call.next_steps:
        console.print(f"  next: {step}")
    if call.cost.get("total") is not None:
        items = ", ".join(f"{k} ${v:.4f}" for k, v in call.cost.get("items", {}).items())
        console.print(f"[bold]cost:[/] ${call.cost['total']:.4f} ({items})")
    return call
