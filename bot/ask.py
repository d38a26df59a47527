"""Owner in the loop, the chat's state: the agent's questions (ask_owner) and which message holds which
transcript line (so a reply to a line becomes a hint tied to it).

Pure bookkeeping plus posting through the call's outbox; the handlers that read it are in bot.hints.
A question is posted as its own message with one button per proposed option, and the user may instead
reply to it in their own words; once answered or timed out its buttons are removed so a late tap cannot
reach the agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.outbox import ChatOutbox

FREE_TEXT_HINT = "Reply to this message to answer in your own words."


@dataclass
class OpenQuestion:
    call_id: int
    id: str
    text: str
    options: list[str]
    chat_id: int
    message_id: int | None = None
    closed: str = ""
    """Why it is closed ("answered: ...", "no answer in time"); empty while open."""


def question_text(q: OpenQuestion) -> str:
    head = f"❓ The agent asks you (call #{q.call_id}):\n{q.text}"
    return f"{head}\n\n{q.closed}" if q.closed else f"{head}\n\n{FREE_TEXT_HINT}"


def question_markup(q: OpenQuestion) -> InlineKeyboardMarkup | None:
    if q.closed or not q.options:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(opt[:60], callback_data=f"ans:{q.id}:{i}")]
                                 for i, opt in enumerate(q.options)])


@dataclass
class Questions:
    by_id: dict[str, OpenQuestion] = field(default_factory=dict)
    by_message: dict[tuple[int, int], str] = field(default_factory=dict)

    def post(self, box: ChatOutbox, call_id: int, detail: dict[str, Any]) -> None:
        q = OpenQuestion(call_id, str(detail["id"]), str(detail.get("question", "")),
                         [str(o) for o in detail.get("options") or []], box.chat_id)
        self.by_id[q.id] = q

        async def send(bot: Bot) -> Message:
            message = await bot.send_message(q.chat_id, question_text(q), reply_markup=question_markup(q))
            q.message_id = message.message_id
            self.by_message[(q.chat_id, message.message_id)] = q.id
            return message

        box.send(send, call_id)

    def for_message(self, chat_id: int, message_id: int) -> OpenQuestion | None:
        qid = self.by_message.get((chat_id, message_id))
        return self.by_id.get(qid) if qid else None

    def close(self, box: ChatOutbox, qid: str, why: str) -> None:
        """Answered or timed out: show it on the question and take its buttons away."""
        q = self.by_id.get(qid)
        if q is None or q.closed:
            return
        q.closed = why

        async def edit(bot: Bot) -> Message:
            result = await bot.edit_message_text(question_text(q), chat_id=q.chat_id, message_id=q.message_id,
                                                 reply_markup=None)
            assert isinstance(result, Message)
            return result

        if q.message_id is not None:
            box.send(edit, None)


@dataclass
class LineMap:
    """Transcript lines by (call, seq), and the seqs each chat message holds."""

    lines: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    messages: dict[tuple[int, int], tuple[int, list[int]]] = field(default_factory=dict)

    def add(self, call_id: int, seq: int, speaker: str, text: str) -> None:
        self.lines[(call_id, seq)] = (speaker, text)

    def on_lines(self, chat_id: int, message_id: int, call_id: int, seqs: list[int]) -> None:
        _, held = self.messages.setdefault((chat_id, message_id), (call_id, []))
        held.extend(s for s in seqs if s not in held)

    def line_for(self, chat_id: int, message_id: int, quote: str = "") -> tuple[int, int] | None:
        """(call id, seq) a reply to this message means: the quoted line if the user quoted part of
        it, else the message's last callee line (what hints are usually about), else its last line."""
        found = self.messages.get((chat_id, message_id))
        if found is None or not found[1]:
            return None
        call_id, seqs = found
        said = [(s, self.lines.get((call_id, s), ("", ""))) for s in seqs]
        if quote.strip():
            for seq, (_, text) in reversed(said):
                if quote.strip() in text:
                    return call_id, seq
        callee = [seq for seq, (speaker, _) in said if speaker == "callee"]
        return call_id, (callee or seqs)[-1]
