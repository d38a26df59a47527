"""Owner in the loop, the handlers: answer the agent's question (a button, or a reply in your own words)
and send a private hint by replying to any transcript line.

Both go to the call server as CallCommands: kind "answer" with ref = the question id, kind "hint" with
ref = the seq of the line replied to. Any other reply falls through to plain steering (an instruction).
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot import steering
from bot.ask import OpenQuestion
from bot.deps import BotDeps, deps
from shared.events import CALL_COMMAND, CallCommand


async def _answer(d: BotDeps, q: OpenQuestion, text: str) -> None:
    await d.bus.publish(CALL_COMMAND, CallCommand(call_id=q.call_id, kind="answer", ref=q.id, text=text))


async def answer_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """One of the options under a question."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, qid, index = query.data.split(":", 2)
    d = deps(context)
    q = d.live.questions.by_id.get(qid)
    if q is None or q.closed or not index.isdigit() or int(index) >= len(q.options):
        await query.answer("This question is no longer open.", show_alert=True)
        return
    await query.answer("Sent to the agent")
    await _answer(d, q, q.options[int(index)])


async def on_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A text reply: to a question -> its answer; to a transcript line -> a hint; else steering."""
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    replied = message.reply_to_message
    text = (message.text or "").strip()
    d = deps(context)
    chat_id = update.effective_chat.id
    if replied is not None and text:
        q = d.live.questions.for_message(chat_id, replied.message_id)
        if q is not None:
            if q.closed:
                await message.reply_text("That question is closed already; your words go to the agent as "
                                         "a note.")
                await _steer(update, context)
                return
            await _answer(d, q, text)
            await message.reply_text(f"✅ Your answer goes to the agent on call #{q.call_id}.")
            return
        quote = getattr(getattr(message, "quote", None), "text", "") or ""
        line = d.live.lines.line_for(chat_id, replied.message_id, quote)
        card = d.live.cards.get(line[0]) if line else None
        if line is not None and card is not None and not card.ended:
            call_id, seq = line
            hint = CallCommand(call_id=call_id, kind="hint", ref=str(seq), text=text)
            await d.bus.publish(CALL_COMMAND, hint)
            said = d.live.lines.lines.get((call_id, seq), ("", ""))[1]
            await message.reply_text(f"🔒 Private hint for the agent about “{_clip(said)}” "
                                     "(never read aloud).")
            return
    await _steer(update, context)


async def _steer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await steering.plain_text(update, context)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def register(application: Any) -> None:
    application.add_handler(CallbackQueryHandler(answer_button, pattern=r"^ans:"))
    # Replies only; everything else reaches steering's plain-text handler, added last.
    application.add_handler(MessageHandler(filters.TEXT & filters.REPLY & ~filters.COMMAND, on_reply))
