"""Allow-list check before any other handler (TypeHandler in group -1, as in PTB's contexttypesbot).

A stranger gets one polite refusal showing their own id, so the owner can add it, and nothing else:
later updates from them are dropped silently. Allowed users get a `User` row on first contact.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes, TypeHandler

from bot.deps import deps
from bot.texts import refusal
from shared.models import User

REFUSED = "refused_users"
KNOWN = "known_users"


async def check_access(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let allow-listed users through; refuse anyone else once, then ignore them."""
    user = update.effective_user
    if user is None:
        raise ApplicationHandlerStop
    d = deps(context)
    if user.id in d.settings.telegram_allowed_users:
        if update.effective_message is not None and update.effective_chat is not None and update.message:
            d.live.user_message(update.effective_chat.id, update.message.message_id)
        known: set[int] = context.bot_data.setdefault(KNOWN, set())
        if user.id not in known:
            await _ensure_user(context, user.id, user.first_name, user.username or "")
            known.add(user.id)
        return
    refused: set[int] = context.bot_data.setdefault(REFUSED, set())
    if user.id not in refused:
        refused.add(user.id)
        logger.info("bot: refused user {} ({})", user.id, user.username or user.first_name)
        if update.callback_query is not None:
            await update.callback_query.answer(refusal(user.id), show_alert=True)
        elif update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, refusal(user.id))
    raise ApplicationHandlerStop


async def _ensure_user(context: ContextTypes.DEFAULT_TYPE, user_id: int, first_name: str,
                       username: str) -> None:
    async with deps(context).db.session() as s:
        if await s.get(User, user_id) is None:
            s.add(User(id=user_id, first_name=first_name, username=username))
            await s.commit()


def register(application: Any) -> None:
    application.add_handler(TypeHandler(Update, check_access), group=-1)
