"""/profile: what the agent may say about the owner (name, organisation, callback number, timezone,
standing facts) and whether calls are confirmed before dialing."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bot import prompts
from bot.deps import deps
from shared.calls import CallRefused
from shared.models import User

FIELDS = {"name": "full_name", "org": "organisation", "organisation": "organisation",
          "callback": "callback_number", "timezone": "timezone", "facts": "standing_facts",
          "confirm": "confirm_calls"}
LIMITS = {"full_name": 80, "organisation": 120, "standing_facts": 600}
USAGE = ("Change a field with /profile <field> <value>, fields: name, org, callback, timezone, facts, "
         "confirm (on/off). e.g. /profile facts NPI 1234567890")


def show(user: User) -> str:
    return "\n".join([
        "Your profile (the agent uses it when asked):",
        f"• name: {user.full_name or user.first_name or '-'}",
        f"• org: {user.organisation or '-'}",
        f"• callback: {user.callback_number or '-'}",
        f"• timezone: {user.timezone}",
        f"• facts: {user.standing_facts or '-'}",
        f"• confirm: {'on' if user.confirm_calls else 'off'} (show [Call] [Edit] [Cancel] before dialing)",
        "", USAGE,
    ])


async def profile_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/profile [field value]: show or change your profile."""
    message, tg_user = update.effective_message, update.effective_user
    assert message is not None and tg_user is not None
    args = context.args or []
    if not args:
        async with deps(context).db.session() as s:
            user = await s.get(User, tg_user.id) or User(id=tg_user.id)
        await message.reply_text(show(user))
        return
    key = args[0].lower()
    if key not in FIELDS:
        await message.reply_text(f"There is no profile field {args[0]!r}. {USAGE}")
        return
    if len(args) == 1:
        await prompts.ask(update, context, "profile", key, f"Send the new value for {key}.")
        return
    await set_field(update, context, " ".join(args[1:]), key)


async def set_field(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str, key: Any) -> None:
    message, tg_user = update.effective_message, update.effective_user
    assert message is not None and tg_user is not None
    field = FIELDS[key]
    value = value.strip()
    stored: Any = value
    try:
        stored = _validate(context, field, value)
    except ValueError as exc:
        await message.reply_text(f"I can't use that: {exc}.")
        return
    async with deps(context).db.session() as s:
        user = await s.get(User, tg_user.id)
        if user is None:
            user = User(id=tg_user.id, first_name=tg_user.first_name)
        setattr(user, field, stored)
        s.add(user)
        await s.commit()
    shown = ("on" if stored else "off") if field == "confirm_calls" else stored
    await message.reply_text(f"Saved {key}: {shown}.")


def _validate(context: ContextTypes.DEFAULT_TYPE, field: str, value: str) -> Any:
    if field == "confirm_calls":
        if value.lower() not in ("on", "off", "yes", "no", "true", "false"):
            raise ValueError("say on or off")
        return value.lower() in ("on", "yes", "true")
    if field == "callback_number":
        try:
            return deps(context).calls.check(value)[0]
        except CallRefused as exc:
            raise ValueError(str(exc)) from None
    if field == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a timezone; use a name like Europe/Paris or America/New_York"
                             ) from None
        return value
    if len(value) > LIMITS.get(field, 200):
        raise ValueError(f"it is too long (at most {LIMITS.get(field, 200)} characters)")
    return value


def register(application: Any) -> None:
    prompts.on("profile", set_field)
    application.add_handler(CommandHandler("profile", profile_cmd))
