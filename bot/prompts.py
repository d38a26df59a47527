"""Small follow-up questions ("What should the agent say?") answered by the user's next plain message.

A handler that needs one more piece of text calls `ask`; the plain-text handler (bot/steering.py) calls
`answer` first, which routes the reply to the handler registered for that kind. Kinds are registered by
the module that asks (`on(kind, handler)`), so new features add their own without touching the router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telegram import ForceReply, Update
from telegram.ext import ContextTypes

Answer = Callable[[Update, ContextTypes.DEFAULT_TYPE, str, Any], Awaitable[None]]
_HANDLERS: dict[str, Answer] = {}
KEY = "awaiting"


def on(kind: str, handler: Answer) -> None:
    _HANDLERS[kind] = handler


async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE, kind: str, ref: Any, question: str) -> None:
    """Ask `question` and remember that the next plain message answers it."""
    assert context.chat_data is not None
    context.chat_data[KEY] = (kind, ref)
    message = update.effective_message
    if message is not None and update.callback_query is None:
        await message.reply_text(question, reply_markup=ForceReply(selective=True))
    elif update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, question, reply_markup=ForceReply())


async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> bool:
    """Route `text` to a pending question; False when none was pending."""
    if context.chat_data is None or KEY not in context.chat_data:
        return False
    kind, ref = context.chat_data.pop(KEY)
    handler = _HANDLERS.get(kind)
    if handler is None:
        return False
    await handler(update, context, text, ref)
    return True


def forget(context: ContextTypes.DEFAULT_TYPE) -> None:
    if context.chat_data is not None:
        context.chat_data.pop(KEY, None)
