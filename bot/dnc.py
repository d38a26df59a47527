"""/dnc: the do-not-call list. Callees who asked not to be called again are on it; /call and /schedule
refuse those numbers. The owner sees the list, adds a number, or removes one put there by mistake."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bot.deps import deps
from bot.texts import COMMANDS, Command
from shared import dnc
from shared.calls import CallRefused

USAGE = "Use /dnc add <number> to block a number, /dnc remove <number> to allow it again."

COMMANDS.append(Command(
    "dnc", "Do-not-call list", "/dnc [add|remove <number>] — numbers the agent never calls (callees who "
    "asked not to be called again are added automatically)", "/dnc remove +1 212 555 0123"))


def _entry(row: Any) -> str:
    when = row.created_at.strftime("%Y-%m-%d")
    if row.source == "callee":
        origin = f"asked on call #{row.call_id}" if row.call_id else "asked on a call"
    else:
        origin = "added by you"
    return f"• {row.number} ({origin}, {when})"


async def dnc_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/dnc [add <number> | remove <number>]."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    args = context.args or []
    d = deps(context)
    if not args:
        rows = await dnc.entries(d.db)
        listing = "\n".join(_entry(r) for r in rows) if rows else "The do-not-call list is empty."
        head = "Do-not-call list (the agent never calls these):\n" if rows else ""
        await message.reply_text(f"{head}{listing}\n\n{USAGE}")
        return
    verb, raw = args[0].lower(), " ".join(args[1:])
    if verb not in ("add", "remove") or not raw:
        await message.reply_text(USAGE)
        return
    try:
        number, pretty = d.calls.check(raw)
    except CallRefused as exc:
        await message.reply_text(f"That is not a number I could call: {exc}.")
        return
    if verb == "add":
        await dnc.add(d.db, number, source="owner", added_by=user.id)
        await message.reply_text(f"{pretty} is on the do-not-call list: /call and /schedule will refuse it.")
    elif await dnc.remove(d.db, number):
        await message.reply_text(f"Removed {pretty} from the do-not-call list; it may be called again.")
    else:
        await message.reply_text(f"{pretty} is not on the do-not-call list.")


def register(application: Any) -> None:
    application.add_handler(CommandHandler("dnc", dnc_cmd))
