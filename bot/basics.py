"""/start, /help, unknown commands, and the one error handler (as in PTB's errorhandlerbot)."""

from __future__ import annotations

from typing import Any

from loguru import logger
from telegram import Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from bot.texts import help_text


async def start_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greet and show what the bot does."""
    assert update.effective_message is not None and update.effective_user is not None
    await update.effective_message.reply_text(f"Hi {update.effective_user.first_name}! {help_text()}")


async def help_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: every command with an example."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(help_text())


async def unknown_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command no handler knows."""
    assert update.effective_message is not None
    command = (update.effective_message.text or "").split()[0]
    await update.effective_message.reply_text(f"I don't know {command}. /help lists what I can do.")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its traceback and tell the user in one plain line."""
    logger.opt(exception=context.error).error("bot: error while handling an update: {}", context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, "Sorry, something went wrong on my side "
                                           "while handling that. Please try again in a moment.")
        except Exception as exc:  # Telegram itself failing: the log above is all we can do
            logger.warning("bot: could not report the error to the chat: {}", exc)


def register(application: Any) -> None:
    application.add_handler(CommandHandler("start", start_cmd))
    application.add_handler(CommandHandler("help", help_cmd))


def register_last(application: Any) -> None:
    application.add_handler(MessageHandler(filters.COMMAND, unknown_cmd))
    application.add_error_handler(on_error)
