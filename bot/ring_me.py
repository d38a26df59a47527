""""Ring me when a human answers" (hold for me, issue 9): a toggle on the confirmation card, and a button
on the live card that turns it on for a call in progress.

Both need the owner's own number (/profile callback), since that is the phone the call server rings: a
press without one gets a clear alert instead of a bridge that could never ring. On the confirmation card
the option travels in the draft's `options["bridge"]` (like `/call ... --bridge`); on the live card it is
a `CallCommand` "bridge" to the call server holding the call, which answers with `bridge` actions
(armed, ringing, ...) that update the card and hide the button.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, ContextTypes

from bot.call_flow import DRAFTS, _draft, confirm_markup, confirm_text
from bot.deps import deps
from bot.steering import send_command
from shared.models import User

NO_NUMBER = ("I need your own phone number to ring you: set it with /profile callback +1 212 555 0100, "
             "then press again.")


async def _has_number(context: ContextTypes.DEFAULT_TYPE, user_id: int) -> bool:
    async with deps(context).db.session() as s:
        user = await s.get(User, user_id)
    return bool(user and user.callback_number)


async def toggle_draft(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The confirmation card's toggle: ring me (or not) when a human answers."""
    query = update.callback_query
    assert query is not None and query.data is not None and context.chat_data is not None
    token, request = _draft(context, query.data)
    if request is None:
        await query.answer("This request has expired; send /call again.", show_alert=True)
        return
    on = not request.options.get("bridge")
    if on and not await _has_number(context, request.owner_id):
        await query.answer(NO_NUMBER, show_alert=True)
        return
    options = {k: v for k, v in request.options.items() if k != "bridge"}
    if on:
        options["bridge"] = True
    request = dataclasses.replace(request, options=options)
    context.chat_data[DRAFTS][token] = request
    await query.answer("I'll ring you when a human answers." if on else "OK: the agent handles it alone.")
    await query.edit_message_text(confirm_text(request), reply_markup=confirm_markup(token, on))


async def live_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The live card's button: turn hold-for-me on for the call in progress."""
    query = update.callback_query
    assert query is not None and query.data is not None
    ident = query.data.partition(":")[2]
    d = deps(context)
    card = d.live.cards.get(int(ident)) if ident.isdigit() else None
    if card is None or card.ended:
        await query.answer("This call has already ended.", show_alert=True)
        return
    if not await _has_number(context, update.effective_user.id if update.effective_user else 0):
        await query.answer(NO_NUMBER, show_alert=True)
        return
    await send_command(d, card, "bridge")
    card.bridge = "requested"  # the button goes at once; the call server's `bridge` action follows
    d.live.outbox.chat(card.chat_id).card(card)
    await query.answer("I'll ring you when a human answers.")


def register(application: Any) -> None:
    application.add_handler(CallbackQueryHandler(toggle_draft, pattern=r"^ringdraft:"))
    application.add_handler(CallbackQueryHandler(live_button, pattern=r"^ringme:"))
