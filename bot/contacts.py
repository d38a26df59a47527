"""/contacts: names for numbers, so `/call aetna ...` works."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, func, select
from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bot.deps import deps
from shared.calls import CallRefused
from shared.models import Contact

USAGE = ("Use /contacts add <name> <number> (e.g. /contacts add aetna +1 800 555 0199) or "
         "/contacts remove <name>.")


async def contacts_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/contacts [add <name> <number> | remove <name>]."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    args = context.args or []
    d = deps(context)
    if not args:
        async with d.db.session() as s:
            rows = (await s.exec(select(Contact).where(Contact.owner_id == user.id)
                                 .order_by(col(Contact.name)))).all()
        listing = "\n".join(f"• {c.name}: {c.number}" for c in rows) or "No contacts saved yet."
        await message.reply_text(f"{listing}\n\n{USAGE}")
        return
    verb, rest = args[0].lower(), args[1:]
    if verb == "add" and len(rest) >= 2:
        name = rest[0]
        if any(ch.isdigit() for ch in name) or len(name) > 64:
            await message.reply_text("A contact name is one word without digits, e.g. aetna. " + USAGE)
            return
        try:
            number, pretty = d.calls.check(" ".join(rest[1:]))
        except CallRefused as exc:
            await message.reply_text(f"I can't save that number: {exc}.")
            return
        async with d.db.session() as s:
            existing = (await s.exec(select(Contact).where(
                Contact.owner_id == user.id, func.lower(Contact.name) == name.lower()))).first()
            if existing is not None:
                existing.number = number
                s.add(existing)
            else:
                s.add(Contact(owner_id=user.id, name=name, number=number))
            await s.commit()
        await message.reply_text(f"Saved {name}: {pretty}. Call it with /call {name} <task>.")
    elif verb == "remove" and len(rest) == 1:
        async with d.db.session() as s:
            existing = (await s.exec(select(Contact).where(
                Contact.owner_id == user.id, func.lower(Contact.name) == rest[0].lower()))).first()
            if existing is not None:
                await s.delete(existing)
                await s.commit()
        await message.reply_text(f"Removed {rest[0]}." if existing
                                 else f"There is no contact named {rest[0]}.")
    else:
        await message.reply_text(USAGE)


def register(application: Any) -> None:
    application.add_handler(CommandHandler("contacts", contacts_cmd))
