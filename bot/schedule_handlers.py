"""/schedule, /jobs and /cancel <id>: scheduled calls in chat (issue 6).

`/schedule <when> <number|contact> <task>` resolves the time in the user's timezone, vets the callee and
task like /call does, and echoes the exact time and zone with [Schedule] [Cancel] before anything is
saved. `/jobs` lists open ones with [Cancel] [Run now]. The scheduling itself is `CallScheduler`'s.

Wiring: listed in bot.app.HANDLER_MODULES after `call_flow` (its /cancel ends a /call dialogue first),
`register(application)` builds the scheduler from BotDeps; bot.runner calls `start(app)` / `stop(app)`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from bot.texts import COMMANDS, Command
from shared.bus import EventBus
from shared.calls import CallRefused, CallService
from shared.db import Database
from shared.models import Contact, ScheduledCall, User
from shared.policy import check_task as check_policy
from shared.scheduling import (
    CallScheduler,
    Notify,
    ScheduleSettings,
    WhenError,
    callee_window,
    describe,
    merge_number_tokens,
    parse_when,
    split_command,
)
from shared.scheduling.placing import place_via

__all__ = ["build_scheduler", "place_via", "post_via", "register", "start", "stop"]

KEY = "schedule"
DRAFTS = "schedule_drafts"
_NUMBER = re.compile(r"^(\+[\d().\-]+|[\d().\-]{7,})$")

_COMMANDS = [
    Command("schedule", "Schedule a call", "/schedule <when> <number|contact> <task> — call later, in "
            "your timezone; retried on busy / no answer",
            "/schedule tomorrow 9am +1 212 555 0100 Ask the opening hours"),
    Command("jobs", "Scheduled calls", "/jobs — scheduled calls still to come, with [Cancel] [Run now]",
            "/jobs"),
    Command("cancel", "Cancel a scheduled call", "/cancel <id> — drop a scheduled call (see /jobs)",
            "/cancel 3"),
]
COMMANDS.extend(c for c in _COMMANDS if c.name not in {known.name for known in COMMANDS})


@dataclass
class ScheduleDeps:
    scheduler: CallScheduler
    calls: CallService


def post_via(live: Any) -> Notify:
    """Scheduling news goes through the live view's per-chat outbox, in order with the calls' cards."""
    async def notify(user_id: int, text: str) -> None:
        live.post(user_id, f"🗓 {text}")
    return notify


def build_scheduler(db: Database, bus: EventBus, calls: CallService, live: Any,
                    settings: ScheduleSettings | None = None) -> CallScheduler:
    return CallScheduler(db, place_call=place_via(calls), notify=post_via(live), bus=bus, settings=settings)


def register(application: Any, scheduler: CallScheduler | None = None,
             calls: CallService | None = None) -> None:
    """Add the handlers; without arguments the scheduler is built from the bot's BotDeps."""
    if scheduler is None or calls is None:
        from bot.deps import app_deps

        d = app_deps(application)
        calls = d.calls
        scheduler = build_scheduler(d.db, d.bus, d.calls, d.live)
    application.bot_data[KEY] = ScheduleDeps(scheduler, calls)
    application.add_handler(CommandHandler("schedule", schedule_cmd))
    application.add_handler(CommandHandler("jobs", jobs_cmd))
    application.add_handler(CommandHandler("cancel", cancel_cmd))
    application.add_handler(CallbackQueryHandler(button, pattern=r"^sch:"))


async def start(application: Any) -> None:
    """Start the scheduler (after the live view: its notices go through the live view's outbox)."""
    await application.bot_data[KEY].scheduler.start()


async def stop(application: Any) -> None:
    await application.bot_data[KEY].scheduler.close()


def _deps(context: ContextTypes.DEFAULT_TYPE) -> ScheduleDeps:
    return context.application.bot_data[KEY]  # type: ignore[no-any-return]


async def _user_tz(db: Database, user_id: int) -> str:
    async with db.session() as s:
        user = await s.get(User, user_id)
    return user.timezone if user is not None and user.timezone else "UTC"


async def _contact_names(db: Database, owner_id: int) -> set[str]:
    async with db.session() as s:
        names = (await s.exec(select(Contact.name).where(Contact.owner_id == owner_id))).all()
    return {name.lower() for name in names}


async def schedule_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and context.chat_data is not None
    d = _deps(context)
    sched = d.scheduler
    tz = await _user_tz(sched.db, user.id)
    contacts = await _contact_names(sched.db, user.id)
    args = merge_number_tokens(list(context.args or []))
    parse = functools.partial(parse_when, tz=tz, now=sched.clock(), max_ahead=sched.settings.max_ahead)
    try:
        # dateparser is CPU-bound and slow on its first call: keep it off the event loop.
        when, target, task = await asyncio.to_thread(
            split_command, args, is_target=lambda t: bool(_NUMBER.match(t)) or t.lower() in contacts,
            parse=parse)
        to, pretty, contact = await d.calls.resolve(user.id, target)
        task = d.calls.check_task(task)
        verdict = check_policy(task, user.full_name)
        if not verdict.allowed:
            raise CallRefused(f"this task is refused: {verdict.reason}")
    except (WhenError, CallRefused) as exc:
        await message.reply_text(f"I can't schedule that: {exc}.")
        return
    row = sched.new_row(owner_id=user.id, to_number=to, task=task, run_at=when, timezone=tz)
    token = secrets.token_hex(4)
    context.chat_data.setdefault(DRAFTS, {})[token] = row
    callee = f"{contact} ({pretty})" if contact else pretty
    await message.reply_text(confirm_text(row, callee), reply_markup=InlineKeyboardMarkup([[
        InlineKeyboardButton("✅ Schedule", callback_data=f"sch:ok:{token}"),
        InlineKeyboardButton("✖️ Cancel", callback_data=f"sch:no:{token}"),
    ]]))


def confirm_text(row: ScheduledCall, callee: str) -> str:
    window = callee_window(row)
    lines = [f"Schedule a call to {callee}", f"at {describe(row.run_at, row.timezone)}?", "",
             f"Task: {row.task}", "",
             f"Up to {row.max_attempts} attempts, {row.retry_delay_minutes} min apart, on busy, no answer, "
             f"voicemail or failure. Calling window: {window.describe()}."]
    opening = window.next_opening(row.run_at)
    if opening != row.run_at:
        lines.append(f"That time is outside the window: the call will be placed at "
                     f"{describe(opening, row.timezone)}.")
    return "\n".join(lines)


async def jobs_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    text, markup = jobs_view(await _deps(context).scheduler.list_open(user.id))
    await message.reply_text(text, reply_markup=markup)


def jobs_view(rows: list[ScheduledCall], head: str = "") -> tuple[str, InlineKeyboardMarkup | None]:
    if not rows:
        return head + "No scheduled calls. Add one with /schedule <when> <number|contact> <task>.", None
    lines, keyboard = [head + "Scheduled calls:"], []
    for row in rows:
        state = "calling now" if row.status == "running" else describe(row.run_at, row.timezone)
        lines.append(f"#{row.id} {row.to_number} — {state} — attempt {row.attempts}/{row.max_attempts}\n"
                     f"   {row.task}")
        buttons = [InlineKeyboardButton(f"✖️ Cancel #{row.id}", callback_data=f"sch:cancel:{row.id}")]
        if row.status == "pending":
            buttons.append(InlineKeyboardButton(f"▶️ Run now #{row.id}", callback_data=f"sch:run:{row.id}"))
        keyboard.append(buttons)
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


async def cancel_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    args = context.args or []
    if len(args) != 1 or not args[0].lstrip("#").isdigit():
        await message.reply_text("Write /cancel <id> with the number of a scheduled call from /jobs, "
                                 "e.g. /cancel 3.")
        return
    sc_id = int(args[0].lstrip("#"))
    if await _deps(context).scheduler.cancel(sc_id, owner_id=user.id):
        await message.reply_text(f"Cancelled scheduled call #{sc_id}: no further attempts will be made.")
    else:
        await message.reply_text(f"There is no scheduled call #{sc_id} to cancel (see /jobs).")


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and query.data is not None and user is not None
    _, action, ref = query.data.split(":", 2)
    sched = _deps(context).scheduler
    if action in ("ok", "no"):
        drafts: dict[str, ScheduledCall] = (context.chat_data or {}).get(DRAFTS, {})
        row = drafts.pop(ref, None)
        if row is None:
            await query.answer("This request has expired; send /schedule again.", show_alert=True)
        elif action == "no":
            await query.answer("Cancelled")
            await query.edit_message_text("Not scheduled.")
        elif row.run_at <= sched.clock():
            await query.answer("Too late", show_alert=True)
            await query.edit_message_text(f"Not scheduled: {describe(row.run_at, row.timezone)} has passed "
                                          "while this waited; send /schedule again.")
        else:
            row = await sched.schedule(row)
            await query.answer("Scheduled")
            await query.edit_message_text(f"Scheduled call #{row.id} to {row.to_number} at "
                                          f"{describe(row.run_at, row.timezone)}.\nTask: {row.task}\n"
                                          "See /jobs, or /cancel " + str(row.id) + ".")
    elif action == "cancel":
        done = await sched.cancel(int(ref), owner_id=user.id)
        await query.answer("Cancelled" if done else "Already over")
        head = f"Cancelled scheduled call #{ref}.\n\n" if done else ""
        text, markup = jobs_view(await sched.list_open(user.id), head)
        await query.edit_message_text(text, reply_markup=markup)
    elif action == "run":
        await query.answer("Calling now…")
        ran = await sched.run_now(int(ref), owner_id=user.id)
        head = "" if ran else f"Scheduled call #{ref} is no longer waiting.\n\n"
        text, markup = jobs_view(await sched.list_open(user.id), head)
        await query.edit_message_text(text, reply_markup=markup)
