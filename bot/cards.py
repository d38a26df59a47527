"""What the chat shows about a call: the live card, transcript lines, tool uses and the summary.

Pure functions of plain data, so the wording is tested without Telegram and reused by the transcript
document and the demo.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.hard_lines import hard_line, is_hard
from shared.costs import money
from shared.models import Call

NO_CONNECT = {
    "busy": "the line was busy",
    "no-answer": "nobody answered",
    "canceled": "the call was canceled before it connected",
    "failed": "the call failed",
}
OUTCOME_ICON = {"achieved": "✅", "partial": "🟡", "failed": "❌", "voicemail": "📼", "no_answer": "📵",
                "busy": "📵"}
STATUS_TEXT = {
    "created": "📞 Dialing…", "dialing": "📞 Dialing…", "queued": "📞 Dialing…", "initiated": "📞 Dialing…",
    "ringing": "🔔 Ringing…", "in-progress": "🟢 In progress", "on-hold": "⏸ On hold",
    "transferring": "↪️ Transferring…", "transferred": "↪️ Transferred",
}
RING_ME = "📲 Ring me when a human answers"
# Preferred latency figure for the summary line: end of the callee's speech -> first agent audio out.
LATENCY_KEYS = ("first_audio_ms", "speech_end_to_first_audio", "first_audio", "total_ms")


@dataclass
class CallCard:
    """The bot's view of one call it shows in a chat."""

    call_id: int
    chat_id: int
    callee: str
    task: str = ""
    direction: str = "outbound"
    twilio_sid: str = ""
    message_id: int | None = None
    status: str = "dialing"
    answered_by: str = ""
    detail: str = ""
    hold_since: str = ""
    """HH:MM (owner's timezone) the call went on hold, while it is on hold."""
    answered_at: float | None = None
    """time.monotonic() when a person (or machine) answered, for the elapsed time."""
    ended: bool = False
    end_text: str = ""
    cost: float | None = None
    """Running cost of the call (USD), from the call server's "cost" actions."""
    v2v_ms: float | None = None
    """Median voice-to-voice latency so far (end of callee speech -> first agent audio), measured."""
    bridge: str = ""
    """Hold for me: "" (off), requested, armed, ringing, joined, transcribing or no_answer."""
    shown: Any = field(default=None, repr=False)
    """What the chat shows now (text, buttons), so unchanged edits are skipped."""

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def render(self) -> str:
        head = (f"📲 Incoming call #{self.call_id} from {self.callee}" if self.direction == "inbound"
                else f"Call #{self.call_id} to {self.callee}")
        lines = [head]
        if self.task:
            lines.append(f"Task: {_clip(self.task, 300)}")
        lines.append(self.status_line())
        return "\n".join(lines)

    def status_line(self) -> str:
        if self.ended:
            return f"⏹ Ended: {self.end_text}"
        text = STATUS_TEXT.get(self.status, f"• {self.status}")
        if self.status == "on-hold" and self.hold_since:
            text += f" since {self.hold_since}"
        if self.answered_by and self.status in ("in-progress", "on-hold"):
            who = "a person" if self.answered_by == "human" else (
                "an answering machine" if self.answered_by.startswith("machine") else self.answered_by)
            text += f" · answered by {who}"
        if self.answered_at is not None:
            text += f" · {elapsed(time.monotonic() - self.answered_at)}"
        if self.cost is not None and not self.ended:
            text += f" · {money(self.cost)}"
        if self.v2v_ms is not None and not self.ended:
            text += f" · replies in {self.v2v_ms / 1000:.1f} s"
        if self.detail and self.status == "transferring":  # other details (AMD...) are noise on a card
            text += f" to {_clip(self.detail, 60)}"
        return text

    def markup(self) -> InlineKeyboardMarkup | None:
        if self.ended:
            return None
        return InlineKeyboardMarkup([
            [InlineKeyboardButton("☎️ Hang up", callback_data=f"hang:{self.call_id}"),
             InlineKeyboardButton("↪️ Transfer to me", callback_data=f"xfer:{self.call_id}")],
            [InlineKeyboardButton("💬 Say…", callback_data=f"say:{self.call_id}")],
            *([[InlineKeyboardButton(RING_ME, callback_data=f"ringme:{self.call_id}")]]
              if self.bridge in ("", "no_answer") else []),
        ])


def elapsed(seconds: float) -> str:
    total = max(0, int(seconds))
    return f"{total // 60}:{total % 60:02d}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transcript_line(speaker: str, text: str, interrupted: bool = False) -> str:
    if speaker == "agent":
        return f"🤖 Agent: {text}" + ("… ✂️ (cut off)" if interrupted else "")
    if speaker == "callee":
        return f"👤 Callee: {text}"
    if speaker == "owner":
        return f"📝 You: {text}"
    return f"ℹ️ {text}"


def action_line(kind: str, detail: dict[str, Any]) -> str | None:
    """One line for a tool use or notable step; None for bookkeeping not worth a line.

    Kinds are what the call server logs: the agent's tool calls by tool name, `fact` (from note_fact,
    so `note_fact` itself is not repeated), the owner's commands, and errors.
    """
    if is_hard(kind, detail):
        return hard_line(kind, detail)
    if kind in ("digits", "press_digits"):
        return f"🔢 Pressed {detail.get('digits', '')}".rstrip()
    if kind in ("on_hold", "wait_on_hold"):
        return "⏸ Waiting on hold" + (f" ({detail['reason']})" if detail.get("reason") else "")
    if kind == "fact":
        return f"📌 Noted: {detail.get('label', 'fact')}: {detail.get('value', '')}"
    if kind in ("transfer", "transfer_call"):
        return f"↪️ Transferring to {detail.get('number') or 'you'}"
    if kind == "end_call":
        return "👋 Agent ended the call" + (f": {detail['reason']}" if detail.get("reason") else "")
    if kind == "hangup":
        return "☎️ Hung up by you" if detail.get("by") == "owner" else "☎️ Hung up"
    if kind == "hint":
        return f"🔒 Agent got your private hint: {detail.get('text', '')}"
    if kind == "owner_answer":
        return f"✅ Agent got your answer: {detail.get('answer', '')}"
    if kind == "owner_timeout":
        return f"⌛ No answer from you after {detail.get('waited_s', '?')} s: someone should call back"
    if kind == "bridge":
        return bridge_line(detail)
    if kind in ("instruct", "answer"):
        return f"📝 Agent got your note: {detail.get('text', '')}"
    if kind == "say":
        return f"💬 Agent is saying your words: {detail.get('text', '')}"
    if kind == "command_failed":
        return f"⚠️ Your {detail.get('command', 'command')} did not work: {detail.get('error', '')}"
    if kind == "error":
        return f"⚠️ Trouble on the call ({detail.get('what', '?')}): the agent carries on"
    if kind == "do_not_call":
        return (f"🚫 The callee asked not to be called again: {detail.get('number', 'the number')} is now on "
                "the do-not-call list (/dnc)")
    if kind in ("limit_warning", "limit_reached") and detail.get("limit") == "cost":
        what = "near" if kind == "limit_warning" else "at"
        then = "wrapping up" if kind == "limit_warning" else "saying goodbye and hanging up"
        limit = money(float(detail.get("max", 0)))
        return f"💰 The call is {what} its cost limit ({limit}): the agent is {then}"
    if kind in ("note_fact", "turn_metrics", "command", "dtmf_received", "cost", "ask_owner", "next_step"):
        return None
    shown = ", ".join(f"{k}={v}" for k, v in detail.items())
    return f"⚙️ {kind}" + (f": {shown}" if shown else "")


def bridge_line(detail: dict[str, Any]) -> str | None:
    """Hold for me: the stages of ringing the owner and joining them to the call."""
    stage = detail.get("stage")
    if stage == "ringing":
        return "📞 Human on the line, ringing you"
    if stage == "joined":
        return "🔗 You are connected: the agent has stepped out"
    if stage == "no_answer":
        return "📵 You did not pick up: the agent carries on itself"
    if stage == "armed":  # set before dialing, the confirmation card already said so
        return "📲 I'll ring you when a human answers" if detail.get("by") == "owner" else None
    if stage == "transcribing":
        return "📝 Recording is on: the transcript goes on while you talk"
    return f"⚙️ bridge: {stage}"


def end_text(status: str, reason: str) -> str:
    base = {"completed": "call completed", **NO_CONNECT}.get(status, status)
    if reason and reason not in (status, base):
        return f"{base} ({reason})"
    return base


def duration_text(call: Call) -> str:
    return elapsed(call.duration_s or 0)


def latency_text(latency: dict[str, Any]) -> str:
    figures = {k: v for k, v in latency.items() if isinstance(v, dict) and "p50" in v}
    if not figures:
        return ""
    key = next((k for k in LATENCY_KEYS if k in figures), max(figures, key=lambda k: figures[k]["p50"]))
    fig = figures[key]
    turns = latency.get("turns", fig.get("n", 0))
    what = "end of speech to first audio" if key == "first_audio_ms" else key.replace("_", " ")
    return f"response latency p50 {fig['p50']:.0f} ms, p95 {fig['p95']:.0f} ms ({what}, {turns} turns)"


def summary_text(call: Call, callee: str) -> str:
    """The after-call report; a one-liner for calls that never connected."""
    if call.outcome in ("busy", "no_answer") or (call.status in NO_CONNECT and not call.answered_at):
        reason = call.end_reason if call.end_reason not in ("", call.status) else ""
        what = NO_CONNECT.get(call.status, call.status)
        return f"📵 Call #{call.id} to {callee}: {what}" + (f": {reason}" if reason else "") + "."
    icon = OUTCOME_ICON.get(call.outcome, "☑️")
    lines = [f"{icon} Call #{call.id} to {callee}: {call.outcome or call.status}"]
    stats = [f"duration {duration_text(call)}"]
    if latency_text(call.latency):
        stats.append(latency_text(call.latency))
    if call.cost and "total" in call.cost:
        stats.append(f"cost {money(float(call.cost['total']))}")
    lines.append(" · ".join(stats))
    if call.summary:
        lines += ["", call.summary]
    if call.facts:
        lines += ["", "Facts:"] + [f"• {f.get('label', 'fact')}: {f.get('value', '')}" for f in call.facts]
    if call.next_steps:
        lines += ["", "Next steps:"] + [f"• {step}" for step in call.next_steps]
    return "\n".join(lines)


def summary_markup(call: Call) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton("📄 Full transcript", callback_data=f"tx:{call.id}")]
    if call.recording_url:
        row.append(InlineKeyboardButton("🎧 Recording", callback_data=f"rec:{call.id}"))
    again = InlineKeyboardButton("🔁 Call again", callback_data=f"again:{call.id}")
    return InlineKeyboardMarkup([row, [again]])


def callee_name(call: Call) -> str:
    contact = (call.options or {}).get("contact") or ""
    number = call.to_number if call.direction == "outbound" else call.from_number
    return f"{contact} ({number})" if contact else number
