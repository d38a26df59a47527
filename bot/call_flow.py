"""/call: parse, ask for what is missing, confirm with [Call] [Edit] [Cancel], dial.

The confirmation message becomes the call's live card once [Call] is pressed, so the chat holds one
message per call. Drafts live in chat_data under a short token; a button whose draft is gone (used,
cancelled, bot restarted) gets a polite "expired" answer.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from loguru import logger
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot import prompts
from bot.deps import deps
from shared.calls import CallFailed, CallRefused, CallRequest
from shared.models import User

TARGET, TASK = range(2)
DRAFTS = "drafts"
_PHONE_TOKEN = re.compile(r"^[+\d().\-]+$")


def split_target(text: str) -> tuple[str, str]:
    """"+1 212 555 0100 ask about X" -> ("+1 212 555 0100", "ask about X"); a contact is one word."""
    words = text.split()
    if not words:
        return "", ""
    if not _PHONE_TOKEN.match(words[0]):
        return words[0], " ".join(words[1:])
    count = 0
    while count < len(words) and _PHONE_TOKEN.match(words[count]):
        count += 1
    return " ".join(words[:count]), " ".join(words[count:])


BRIDGE_FLAG = re.compile(r"(?:^|\s)--bridge\b")


RING_ME = "📲 Ring me when a human answers"
RING_ME_ON = "✅ Ring me when a human answers"


def confirm_markup(token: str, bridge: bool = False) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("📞 Call", callback_data=f"go:{token}"),
        InlineKeyboardButton("✏️ Edit", callback_data=f"edit:{token}"),
        InlineKeyboardButton("✖️ Cancel", callback_data=f"cancel:{token}"),
    ], [InlineKeyboardButton(RING_ME_ON if bridge else RING_ME, callback_data=f"ringdraft:{token}")]])


def confirm_text(request: CallRequest) -> str:
    bridge = ("\n\n📲 Hold for me: I'll ring you when a human answers." if request.options.get("bridge")
              else "")
    return (f"Ready to call {request.callee}.\n\nTask: {request.task}\n\n"
            f"The agent will open with: “{request.opening_line}”{bridge}")


async def call_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """/call <number|contact> <task>: ask for whatever is missing."""
    assert context.chat_data is not None and update.effective_message is not None
    target, task = split_target(" ".join(context.args or []))
    if not target:
        await update.effective_message.reply_text(
            "Who should I call? Send a number (e.g. +1 212 555 0100) or a saved contact name. "
            "/cancel to stop.")
        return TARGET
    context.chat_data["call_target"] = target
    if not task:
        return await _ask_task(update, target)
    return await _vet_and_confirm(update, context, target, task)


async def got_target(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The number or contact, answered in the /call conversation."""
    assert context.chat_data is not None and update.effective_message is not None
    target, task = split_target(update.effective_message.text or "")
    try:
        await deps(context).calls.resolve(update.effective_user.id if update.effective_user else 0, target)
    except CallRefused as exc:
        await update.effective_message.reply_text(
            f"I can't call that: {exc}.\nSend another number, or /cancel.")
        return TARGET
    context.chat_data["call_target"] = target
    if not task:
        return await _ask_task(update, target)
    return await _vet_and_confirm(update, context, target, task)


async def got_task(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """The task, answered in the /call conversation."""
    assert context.chat_data is not None and update.effective_message is not None
    target = context.chat_data.get("call_target", "")
    return await _vet_and_confirm(update, context, target, update.effective_message.text or "")


async def cancel_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """/cancel inside the /call conversation."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("OK, nothing was dialed.")
    return ConversationHandler.END


async def _ask_task(update: Update, target: str) -> int:
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        f"What should the agent do on the call to {target}? e.g. “Ask for the status of claim 4411”. "
        "/cancel to stop.")
    return TASK


async def _vet_and_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE, target: str, task: str) -> int:
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    bridge = BRIDGE_FLAG.search(task) is not None  # "--bridge": ring me when a human answers (issue 9)
    task = " ".join(BRIDGE_FLAG.sub(" ", task).split())
    try:
        request = await deps(context).calls.prepare(update.effective_user.id, target, task)
    except CallRefused as exc:
        await message.reply_text(f"I can't place that call: {exc}.")
        return ConversationHandler.END
    if bridge:
        request = dataclasses.replace(request, options={**request.options, "bridge": True})
    await offer(update, context, request)
    return ConversationHandler.END


async def offer(update: Update, context: ContextTypes.DEFAULT_TYPE, request: CallRequest) -> None:
    """Show the confirmation card, or dial at once when the user turned confirmation off."""
    d = deps(context)
    assert context.chat_data is not None and update.effective_chat is not None
    async with d.db.session() as s:
        user = await s.get(User, request.owner_id)
    confirm = d.settings.confirm_before_call and (user is None or user.confirm_calls)
    if not confirm:
        card = await context.bot.send_message(update.effective_chat.id, f"📞 Dialing {request.callee}…")
        await dial(context, request, card)
        return
    token = secrets.token_hex(4)
    context.chat_data.setdefault(DRAFTS, {})[token] = request
    await context.bot.send_message(update.effective_chat.id, confirm_text(request),
                                   reply_markup=confirm_markup(token, bool(request.options.get("bridge"))))


async def dial(context: ContextTypes.DEFAULT_TYPE, request: CallRequest, card: Message) -> None:
    """Place the call; `card` becomes its live card (the live view edits it from now on)."""
    d = deps(context)
    try:
        call = await d.calls.place(request, chat_id=card.chat_id, card_message_id=card.message_id)
    except CallRefused as exc:
        await card.edit_text(f"Not dialed: {exc}.")
        return
    except CallFailed as exc:
        logger.info("bot: call {} failed to dial: {}", exc.call.id, exc.reason)
        return  # CallEnded was published: the live view shows the failure on the card
    assert call.id is not None
    d.live.bind_message(card.chat_id, card.message_id, call.id)


def _draft(context: ContextTypes.DEFAULT_TYPE, data: str) -> tuple[str, CallRequest | None]:
    token = data.split(":", 1)[1]
    drafts: dict[str, CallRequest] = (context.chat_data or {}).get(DRAFTS, {})
    return token, drafts.get(token)


async def confirm_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """[Call] [Edit] [Cancel] on a confirmation card."""
    query = update.callback_query
    assert query is not None and query.data is not None and context.chat_data is not None
    action = query.data.split(":", 1)[0]
    token, request = _draft(context, query.data)
    if request is None:
        await query.answer("This request has expired; send /call again.", show_alert=True)
        return
    if action == "go":
        context.chat_data[DRAFTS].pop(token, None)
        await query.answer("Dialing…")
        card = await query.edit_message_text(f"📞 Dialing {request.callee}…\nTask: {request.task}")
        if isinstance(card, Message):
            await dial(context, request, card)
    elif action == "cancel":
        context.chat_data[DRAFTS].pop(token, None)
        await query.answer("Cancelled")
        await query.edit_message_text(f"Cancelled: the call to {request.callee} was not placed.")
    else:
        await query.answer()
        await prompts.ask(update, context, "edit_task", token,
                          f"Send the new task for the call to {request.callee}.")


async def edited_task(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, token: Any) -> None:
    """The corrected task after [Edit]: vet it again and show a fresh confirmation."""
    assert context.chat_data is not None and update.effective_message is not None
    drafts: dict[str, CallRequest] = context.chat_data.get(DRAFTS, {})
    old = drafts.pop(token, None)
    if old is None:
        await update.effective_message.reply_text("That request has expired; send /call again.")
        return
    try:
        request = await deps(context).calls.prepare(old.owner_id, old.to_number, text)
    except CallRefused as exc:
        drafts[token] = old
        await update.effective_message.reply_text(f"I can't use that task: {exc}. Press Edit to try again.")
        return
    request = dataclasses.replace(request, contact_name=old.contact_name)
    if old.options.get("bridge"):  # "ring me when a human answers" survives an edit of the task
        request = dataclasses.replace(request, options={**request.options, "bridge": True})
    await offer(update, context, request)


def register(application: Any) -> None:
    prompts.on("edit_task", edited_task)
    text = filters.TEXT & ~filters.COMMAND
    application.add_handler(ConversationHandler(
        entry_points=[CommandHandler("call", call_cmd)],
        states={TARGET: [MessageHandler(text, got_target)], TASK: [MessageHandler(text, got_task)]},
        fallbacks=[CommandHandler("cancel", cancel_cmd)],
        name="call", allow_reentry=True,
    ))
    application.add_handler(CallbackQueryHandler(confirm_button, pattern=r"^(go|edit|cancel):"))
