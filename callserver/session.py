"""One phone call's realtime conversation: STT -> turn-taking -> LLM -> phrases -> TTS -> playback.

Every part is an async task under one TaskGroup owned by ``run()``; the session belongs to the call, not
to a WebSocket, so ``attach`` is called again when the call's TwiML is replaced and a new stream opens.
A reply is one task (LLM stream + speaker, callserver.speech); barge-in cancels that whole task (LLM, TTS
and queued audio via ``clear``) and rewrites the assistant turn to the words actually heard. The audio
path never awaits the database or the bus: ``CallLog`` only enqueues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from callserver import hard_tools, owner_loop
from callserver.bridge import Bridge
from callserver.commands import ChatCommands
from callserver.hardcalls import HardCalls
from callserver.history import History, Message, ToolCallRecord
from callserver.llm.base import TextDelta, ToolCallEvent
from callserver.metrics import TurnMetrics, TurnTimer, now
from callserver.owner_loop import OwnerLoop
from callserver.phrases import PhraseSplitter, split_text
from callserver.playback import Playback, Utterance
from callserver.speech import Speech
from callserver.stt.base import SpeechStarted
from callserver.tools import ToolRegistry, default_registry
from callserver.turns import Backchannel, BargeIn, EndOfTurn, TurnTaker
from callserver.twilio_stream import Dtmf, MarkEcho, Media, MediaStream, Stop
from callserver.usage import CallUsage
from shared.events import CallCommand
from shared.twiml import dial_twiml

if TYPE_CHECKING:
    from callserver.call_log import CallLog
    from callserver.providers import Providers
    from shared.config import Settings
    from shared.twilio_api import Telephony

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
MAX_TOOL_ROUNDS = 6


@dataclass
class CallInfo:
    call_id: int
    twilio_sid: str
    direction: str
    to_number: str
    from_number: str
    task: str
    system_prompt: str
    opening_line: str
    owner_number: str = ""
    greeting: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class CallSession:
    def __init__(self, info: CallInfo, *, settings: Settings, providers: Providers, log: CallLog,
                 telephony: Telephony, tools: ToolRegistry | None = None) -> None:
        self.info = info
        self.settings = settings
        self.providers = providers
        self.log = log
        self.telephony = telephony
        self.tools = tools or owner_loop.register(hard_tools.register(default_registry()))
        self.owner_number = info.owner_number
        self.history = History(info.system_prompt)
        self.playback = Playback()
        self.turns = TurnTaker()
        self.stt = providers.stt()
        self.extra_stt: list[Any] = []
        """Further STT streams of this call (the owner's voice on a bridged call): billed too."""
        self.usage = CallUsage(self)
        """Units and cost of this call, the cost limit, do-not-call requests (callserver.usage)."""
        self.providers = self.usage.metered(providers)
        self.facts: list[dict[str, str]] = []
        self.metrics = TurnMetrics()
        self.ended_reason = ""
        self.streams = 0
        self._ended = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply: asyncio.Task[None] | None = None
        self._unplayed: list[tuple[Message, Utterance]] = []
        """Assistant turns whose audio is not fully heard yet (what a barge-in must rewrite)."""
        self.commands = ChatCommands(self)
        """The owner's commands from the chat, run in order (callserver.commands)."""
        self._log = logger.bind(call_id=info.call_id)
        self.hard = HardCalls(self)
        """IVR menus, keypad, hold, voicemail, time limits (callserver.hardcalls)."""
        self.owner = OwnerLoop(self)
        """ask_owner questions and the owner's hints on lines (callserver.owner_loop)."""
        self.bridge = Bridge(self)
        """Hold for me: ring the owner when a person picks up after the hold (callserver.bridge)."""

    # --- life ------------------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            stt_task = tg.create_task(self._run_stt())
            self._spawn(self._listen())
            self._spawn(self.commands.run())
            self._spawn(self.usage.watch())
            if self.info.greeting:
                self._start_reply(say=self.info.greeting)
            await self._ended.wait()
            for task in list(self._tasks):
                task.cancel()
            await self._last_words(stt_task)
            await self.bridge.transcript.wait_done()
        self._log.info("session over: {}", self.ended_reason)

    async def _last_words(self, stt_task: asyncio.Task[None]) -> None:
        """The call is over: close STT (which flushes it) and log what the callee said last, unanswered."""
        self.stt.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                async for event in self.stt.events():
                    for decision in self.turns.feed(event, False):
                        if isinstance(decision, EndOfTurn | Backchannel):
                            self.log.line("callee", decision.text)
        if self.turns.pending_text:
            self.log.line("callee", self.turns.pending_text)
        if not stt_task.done():
            stt_task.cancel()

    def end(self, reason: str) -> None:
        if not self.ended_reason:
            self.ended_reason = reason
        self._ended.set()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any] | None:
        if self._tg is None or self._ended.is_set():
            return None
        task = self._tg.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_stt(self) -> None:
        try:
            await self.stt.run()
        except Exception as exc:  # STT gone for good: without ears the call cannot go on
            self._log.error("speech-to-text failed: {!r}", exc)
            self.log.action("error", what="stt", detail=str(exc))
            self.end("stt failed")

    async def attach(self, stream: MediaStream) -> None:
        """Feed one Twilio stream of this call until it stops (the session lives on)."""
        self.streams += 1
        if self.bridge.is_fork(stream):
            await self.bridge.transcript.run(stream)  # listen-only: never a stream to talk into
            return
        self.playback.attach(stream)
        try:
            async for event in stream.events():
                if isinstance(event, Media):
                    self.hard.on_media(event.payload)
                    self.stt.push(event.payload)
                elif isinstance(event, MarkEcho):
                    self.playback.on_mark(event.name)
                elif isinstance(event, Dtmf):
                    self.hard.on_dtmf(event.digit)
                elif isinstance(event, Stop):
                    break
                if self._ended.is_set():
                    break
        finally:
            self.playback.detach(stream)

    def on_call_status(self, status: str, answered_by: str = "") -> None:
        if status in FINAL_STATUSES:
            self.end(status)
        elif answered_by:
            self.hard.on_amd(answered_by)

    # --- listening -------------------------------------------------------------------------------
    def _agent_speaking(self) -> bool:
        return (self._reply is not None and not self._reply.done()) or self.playback.speaking

    async def _listen(self) -> None:
        async for event in self.stt.events():
            arrived = now()
            if isinstance(event, SpeechStarted):
                continue
            event = self.hard.filter(event)
            busy = self._agent_speaking() and not self.hard.listening_only and not self.owner.waiting
            for decision in self.turns.feed(event, busy):
                if isinstance(decision, BargeIn):
                    await self._barge_in(arrived)
                elif isinstance(decision, EndOfTurn):
                    self.log.line("callee", decision.text)
                    text = decision.text
                    if (self.bridge.joined or self.hard.on_turn(text) or self.owner.on_turn(text)
                            or self.bridge.on_turn(text)):
                        continue  # bridged, a recording on hold, a voicemail greeting, a question: no LLM
                    self.history.add_user(decision.text)
                    self.usage.on_callee_turn(decision.text)
                    self._start_reply(timer=TurnTimer(arrived))
                elif isinstance(decision, Backchannel):
                    self.log.line("callee", decision.text)

    async def _barge_in(self, detected: float) -> None:
        if not self._agent_speaking():
            return
        await self._interrupt()
        reaction = (now() - detected) * 1000
        self.metrics.barge_ins_ms.append(round(reaction, 2))
        self.log.turn_metrics(barge_in_ms=reaction)

    async def _interrupt(self) -> None:
        """Stop talking now: compute what was heard, clear Twilio, cancel the reply, fix the history."""
        heard = [(msg, utt, self.playback.heard(utt)) for msg, utt in self._unplayed]
        self._unplayed = []
        await self.playback.clear()
        if self._reply is not None:
            self._reply.cancel()
            self._reply = None
        for msg, utt, text in heard:
            utt.interrupted = True
            if not utt.sent_audio and not msg.tool_calls:
                with contextlib.suppress(ValueError):
                    self.history.messages.remove(msg)
                continue
            if msg not in self.history.messages:
                self.history.messages.append(msg)
            self.history.interrupt(msg, text)
            self.log.line("agent", text, interrupted=True)

    # --- replying --------------------------------------------------------------------------------
    def _start_reply(self, *, timer: TurnTimer | None = None, say: str | None = None,
                     then: Callable[[], Awaitable[None]] | None = None) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        if self.bridge.joined:
            return  # the callee is with the owner: the agent has no voice on the call any more
        self._reply = self._spawn(self._run_reply(timer, say, then))

    async def _run_reply(self, timer: TurnTimer | None, say: str | None,
                         then: Callable[[], Awaitable[None]] | None) -> None:
        try:
            if say is not None:
                await self._say(say)
            else:
                await self._converse(timer)
            if then is not None:
                await then()
        except Exception as exc:  # e.g. a REST call of a tool failed: the call itself goes on
            self._log.exception("reply failed: {!r}", exc)
            self.log.action("error", what="reply", detail=str(exc))

    async def _say(self, text: str) -> None:
        msg, utt = Message("assistant", text), Utterance()
        self._unplayed.append((msg, utt))
        speech = self.speech(utt)
        speech.put_all(split_text(text))
        await speech.run()
        self.history.messages.append(msg)
        self._spawn(self._log_when_played(msg, utt))
        await self.playback.wait_played()

    async def _converse(self, timer: TurnTimer | None) -> None:
        for _ in range(MAX_TOOL_ROUNDS):
            msg, utt = Message("assistant"), Utterance()
            self._unplayed.append((msg, utt))
            speech = self.speech(utt, timer)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(speech.run())
                await self._think(msg, speech, timer)
            if msg.text or msg.tool_calls:
                self.history.messages.append(msg)
                self._spawn(self._log_when_played(msg, utt))
            else:
                self._unplayed.remove((msg, utt))
            if timer is not None and timer.stamps:
                figures = timer.figures()
                self.metrics.add(figures)
                self.log.turn_metrics(**figures)
                timer = None
            if not msg.tool_calls or await self._run_tools(msg):
                return

    async def _think(self, msg: Message, speech: Speech, timer: TurnTimer | None) -> None:
        splitter = PhraseSplitter(hurry=speech.short_of_audio)
        parts: list[str] = []
        async for event in self.providers.llm.stream(self.history, self.tools.defs):
            if isinstance(event, TextDelta):
                if timer:
                    timer.mark("llm_first_token_ms")
                parts.append(event.text)
                for phrase in splitter.push(event.text):
                    if timer:
                        timer.mark("first_phrase_ms")
                    speech.put(phrase)
            elif isinstance(event, ToolCallEvent):
                msg.tool_calls.append(ToolCallRecord(event.id, event.name, dict(event.arguments)))
        rest = splitter.flush()
        if rest:
            if timer:
                timer.mark("first_phrase_ms")
            speech.put(rest)
        speech.end()
        msg.text = "".join(parts).strip()

    def speech(self, utt: Utterance, timer: TurnTimer | None = None) -> Speech:
        """A speaker for ``utt``: phrases in, this call's TTS and playback (callserver.speech)."""
        return Speech(utt, self.playback, self.providers.tts, timer=timer, log=self._log)

    async def _log_when_played(self, msg: Message, utt: Utterance) -> None:
        end = max((s.end for s in utt.segments), default=0)
        await self.playback.wait_played(end)
        if utt.interrupted:
            return  # the barge-in logged what was heard
        with contextlib.suppress(ValueError):
            self._unplayed.remove((msg, utt))
        if msg.text:
            self.log.line("agent", msg.text)

    async def _run_tools(self, msg: Message) -> bool:
        """Run the turn's tool calls in order; True when one of them ended the conversation."""
        ends = False
        for call in msg.tool_calls:
            self.log.action(call.name, **call.arguments)
            result = await self.tools.call(self, call.name, call.arguments)
            self.history.add_tool_result(call.id, result.content, is_error=result.is_error)
            ends = ends or result.ends_turn
        return ends

    # --- ToolHost --------------------------------------------------------------------------------
    async def wait_played(self) -> None:
        await self.playback.wait_played()

    async def hang_up(self, reason: str) -> None:
        try:
            await self.telephony.hangup(self.info.twilio_sid)
        finally:
            self.end(reason)

    async def transfer(self, number: str) -> None:
        self.log.status("transferring", detail=number)
        caller_id = self.info.from_number if self.info.direction == "outbound" else self.info.to_number
        await self.telephony.update_twiml(self.info.twilio_sid, dial_twiml(number, caller_id))
        self.end(f"transferred to {number}")

    def note_fact(self, label: str, value: str) -> None:
        self.facts.append({"label": label, "value": value})
        self.log.fact(label, value)

    # --- control from the chat -------------------------------------------------------------------
    def handle_command(self, cmd: CallCommand) -> None:
        self.commands.put(cmd)

    async def _interrupt_if_speaking(self) -> None:
        if self._agent_speaking():
            await self._interrupt()
