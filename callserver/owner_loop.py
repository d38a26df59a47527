"""The owner in the loop, for one CallSession: ask_owner questions and hints on transcript lines.

ask_owner keeps its tool call open until the owner answers from the chat (a button or free text, as
CallCommand kind "answer" with ``ref`` = the question id) or the wait times out, so the answer reaches the
agent as that tool's result, within the turn. Both providers need a tool result right after the tool
call, so nothing is added to the LLM history while the question is open. Meanwhile the line is kept
alive with fixed lines spoken aside (never the LLM: no cost, no chance of the model making up an answer):
"still checking" every ``ask_owner_keepalive_s`` of call time, and a short holding reply when the callee
speaks. What the callee said meanwhile goes back to the agent with the answer, so nothing is lost.

Hints are CallCommand kind "hint" with ``ref`` = the seq of the transcript line the owner replied to:
they become a private note tied to that line's words, and never start a reply on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callserver.phrases import split_text
from callserver.playback import Utterance
from callserver.tools import ToolDef, ToolHost, ToolRegistry, ToolResult
from shared.events import CallCommand

if TYPE_CHECKING:
    from callserver.session import CallSession

ASK_OWNER = ToolDef(
    "ask_owner",
    "Ask the person you are calling for, by chat, when you need a decision or a fact you were not given "
    "(e.g. 'They offer Tuesday 3 pm, accept?', 'They ask for the date of birth'). In the same reply, tell "
    "the callee politely that you are checking and ask them to hold. The answer comes back as this tool's "
    "result; never guess instead.",
    {"type": "object", "properties": {
        "question": {"type": "string", "description": "the question, short and self-contained"},
        "options": {"type": "array", "items": {"type": "string"},
                    "description": "proposed answers, shown as buttons (optional)"}},
     "required": ["question"]},
)
CHECKING_LINE = "Let me check that for you. Could you hold for a moment, please?"
KEEPALIVE_LINES = ("I'm still checking, one moment please.", "Thanks for your patience, still checking.",
                   "Sorry for the wait, I'm still checking on that.")
HOLDING_REPLY = "Thank you. I'm still checking, I'll be right with you."
POLL_S = 0.05


@dataclass
class Question:
    id: str
    text: str
    options: list[str]
    asked_ms: float
    answer: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    heard: list[str] = field(default_factory=list)
    """What the callee said while the question was open."""


class OwnerLoop:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.owner = "the person you call for"
        self.pending: Question | None = None
        self.open_questions: list[str] = []
        """Questions never answered (timed out, or the call ended first): next steps for the owner."""
        self._ids = itertools.count(1)
        self._aside = asyncio.Lock()
        self._aside_task: asyncio.Task[Any] | None = None

    @property
    def waiting(self) -> bool:
        return self.pending is not None

    def _now_ms(self) -> float:
        return float(self.s.hard.clock_ms)

    # --- ask_owner --------------------------------------------------------------------------------
    async def ask(self, text: str, options: list[str]) -> ToolResult:
        s = self.s
        settings = s.settings
        await s.wait_played()
        if not self._said_something():
            await self.say_aside(CHECKING_LINE)
        q = Question(f"{s.info.call_id}.{next(self._ids)}", text, options, self._now_ms())
        self.pending = q
        s.log.line("system", f"Question for you: {text}" + (f" ({' / '.join(options)})" if options else ""))
        s.log.action("ask_owner", id=q.id, question=text, options=options)
        keepalive_ms = settings.ask_owner_keepalive_s * 1000
        timeout_ms = settings.ask_owner_timeout_s * 1000
        next_keepalive = q.asked_ms + keepalive_ms
        lines = itertools.cycle(KEEPALIVE_LINES)
        answered = False
        try:
            while not q.answer.done():
                now = self._now_ms()
                if now - q.asked_ms >= timeout_ms:
                    break
                if now >= next_keepalive:
                    next_keepalive = now + keepalive_ms
                    self._aside_soon(next(lines))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(q.answer), POLL_S)
            answered = q.answer.done()
        finally:
            self.pending = None
            waited_s = round((self._now_ms() - q.asked_ms) / 1000)
            if not answered:
                self.open_questions.append(text)
                s.log.line("system", f"No answer from you after {waited_s} s: {text}")
                s.log.action("owner_timeout", id=q.id, question=text, waited_s=waited_s)
                s.log.action("next_step", text=f"Answer the open question: {text}")
        if self._aside_task is not None:
            await asyncio.wait({self._aside_task})  # a keep-alive still playing finishes before the answer
        heard = f" While you waited, the callee said: \"{' '.join(q.heard)}\"." if q.heard else ""
        if not answered:
            return ToolResult(f"No answer from {self.owner} within {waited_s} seconds.{heard} Tell the "
                              "callee that someone will call them back about this, then carry on with the "
                              "rest of the task.")
        answer = q.answer.result()
        s.log.line("owner", answer)
        s.log.action("owner_answer", id=q.id, question=text, answer=answer, waited_s=waited_s)
        return ToolResult(f"{self.owner} answered: \"{answer}\".{heard} Thank the callee for holding and "
                          "carry on with this answer.")

    def _said_something(self) -> bool:
        last = next((m for m in reversed(self.s.history.messages) if m.role == "assistant"), None)
        return bool(last and last.text.strip() and any(c.name == "ask_owner" for c in last.tool_calls))

    def on_turn(self, text: str) -> bool:
        """A finished callee turn; True when it was answered here (a question is open)."""
        q = self.pending
        if q is None:
            return False
        q.heard.append(text)
        self._aside_soon(HOLDING_REPLY)
        return True

    # --- speaking aside -----------------------------------------------------------------------------
    def _aside_soon(self, text: str) -> None:
        if self._aside_task is not None and not self._aside_task.done():
            return  # one filler at a time: the callee never hears two stacked up
        self._aside_task = self.s._spawn(self.say_aside(text))

    async def say_aside(self, text: str) -> None:
        """Speak a fixed line outside the LLM history (it would break the open tool call's pairing)."""
        s = self.s
        async with self._aside:
            utt = Utterance()
            speech = s.speech(utt)
            speech.put_all(split_text(text))
            await speech.run()
            await s.playback.wait_played(max((seg.end for seg in utt.segments), default=0))
            s.log.line("agent", text)

    # --- commands from the chat -------------------------------------------------------------------
    def on_command(self, cmd: CallCommand) -> bool:
        """An answer to the open question, or a hint on a line; False for anything else."""
        if cmd.kind == "answer":
            q = self.pending
            if q is None or (cmd.ref and cmd.ref != q.id) or q.answer.done():
                return False  # late or stale: the session treats it as a plain note
            q.answer.set_result(cmd.text.strip())
            return True
        if cmd.kind == "hint" and cmd.ref:
            self.hint(cmd.ref, cmd.text)
            return True
        return False

    def hint(self, ref: str, text: str) -> None:
        line = self.s.log.text_of(int(ref)) if ref.isdigit() else None
        if line is None:
            note = f"[Private hint from the owner: {text}. Never read it aloud or mention it.]"
        else:
            speaker, said = line
            who = "you (the agent)" if speaker == "agent" else f"the {speaker}"
            note = (f"[Private hint from the owner about the line \"{said}\" said by {who}: {text}. Use it; "
                    "never read it aloud or mention it.]")
        self.s.history.add_note(note)
        self.s.log.action("hint", text=text, ref=ref, line=line[1] if line else "")


async def ask_owner(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    question = str(args["question"]).strip()
    if not question:
        raise ValueError("question is required")
    raw = args.get("options") or []
    options = [str(o).strip() for o in (raw if isinstance(raw, list) else [raw]) if str(o).strip()][:6]
    owner: OwnerLoop = host.owner  # type: ignore[attr-defined]
    return await owner.ask(question, options)


def register(registry: ToolRegistry) -> ToolRegistry:
    registry.register(ASK_OWNER, ask_owner)
    return registry
