"""Steering a live call from the chat: /hangup, /transfer, /say, the card's buttons, and plain text.

Every command goes on the bus as a `CallCommand` to the call server that holds the call's stream. A
hang-up also has a REST fallback: a call that was never answered has no stream (so no call server
holds it), and one whose server does not react within a few seconds is ended through Twilio directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot import prompts
from bot.cards import CallCard
from bot.deps import BotDeps, deps
from shared.calls import CallRefused
from shared.events import CALL_COMMAND, CallCommand
from shared.models import Call, User

NO_LIVE = "No call is live right now. To place one: /call <number> <task>."


async def target_call(update: Update, context: ContextTypes.DEFAULT_TYPE, what: str) -> CallCard | None:
    """The call a message means: the one whose card (or transcript) it replies to, else the only live
    one. Replies with the reason and returns None when there is no single answer."""
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    live = deps(context).live
    chat_id = update.effective_chat.id
    replied = message.reply_to_message
    if replied is not None:
        card = live.card_for_message(chat_id, replied.message_id)
        if card is not None:
            if card.ended:
                await message.reply_text(f"Call #{card.call_id} has already ended.")
                return None
            return card
    cards = live.live_in_chat(chat_id)
    if not cards:
        await message.reply_text(NO_LIVE)
        return None
    if len(cards) > 1:
        numbers = ", ".join(f"#{c.call_id}" for c in cards)
        await message.reply_text(f"Several calls are live ({numbers}): reply to the card of the one you "
                                 f"mean to {what}.")
        return None
    return cards[0]


async def send_command(d: BotDeps, card: CallCard, kind: str, text: str = "", number: str = "") -> None:
    await d.bus.publish(CALL_COMMAND, CallCommand(call_id=card.call_id, kind=kind,  # type: ignore[arg-type]
                                                  text=text, number=number))


async def hang_up(d: BotDeps, card: CallCard) -> None:
    await send_command(d, card, "hangup")
    if not card.answered:
        await _rest_hangup(d, card)  # ringing: no stream yet, so no call server holds it
    else:
        asyncio.get_running_loop().create_task(_fallback(d, card))


async def _fallback(d: BotDeps, card: CallCard) -> None:
    await asyncio.sleep(d.hangup_grace_s)
    if not card.ended:
        logger.info("bot: call {} still live {}s after hangup command; hanging up by REST", card.call_id,
                    d.hangup_grace_s)
        await _rest_hangup(d, card)


async def _rest_hangup(d: BotDeps, card: CallCard) -> None:
    sid = card.twilio_sid
    if not sid:
        async with d.db.session() as s:
            call = await s.get(Call, card.call_id)
        sid = (call.twilio_sid or "") if call else ""
    if not sid:
        return
    try:
        await d.telephony.hangup(sid)
    except Exception as exc:  # the user sees the card; the log keeps the reason
        logger.warning("bot: REST hangup of call {} failed: {}", card.call_id, exc)


async def hangup_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/hangup: end the live call."""
    card = await target_call(update, context, "hang up")
    if card is None:
        return
    await hang_up(deps(context), card)
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"Hanging up call #{card.call_id}…")


async def transfer_to(update: Update, context: ContextTypes.DEFAULT_TYPE, card: CallCard, raw: str) -> None:
    """Vet the number (default: the user's callback number) and ask the call server to transfer."""
    d = deps(context)
    chat_id = update.effective_chat.id if update.effective_chat else card.chat_id
    if not raw.strip():
        async with d.db.session() as s:
            user = await s.get(User, update.effective_user.id if update.effective_user else 0)
        raw = user.callback_number if user else ""
        if not raw:
            await context.bot.send_message(chat_id, "I don't know your number yet: set it with /profile "
                                           "callback +1 212 555 0100, or use /transfer <number>.")
            return
    try:
        number, pretty = d.calls.check(raw)
    except CallRefused as exc:
        await context.bot.send_message(chat_id, f"I can't transfer there: {exc}.")
        return
    await send_command(d, card, "transfer", number=number)
    await context.bot.send_message(chat_id, f"↪️ Transferring call #{card.call_id} to {pretty}…")


async def transfer_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/transfer [number]: put the callee through (default: to you)."""
    card = await target_call(update, context, "transfer")
    if card is not None:
        await transfer_to(update, context, card, " ".join(context.args or []))


async def say_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/say <text>: the agent says exactly this."""
    card = await target_call(update, context, "speak on")
    if card is None:
        return
    text = " ".join(context.args or [])
    if not text:
        await prompts.ask(update, context, "say", card.call_id, "What should the agent say?")
        return
    await _say(update, context, text, card.call_id)


async def _say(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, call_id: Any) -> None:
    d = deps(context)
    card = d.live.cards.get(call_id)
    assert update.effective_message is not None
    if card is None or card.ended:
        await update.effective_message.reply_text(f"Call #{call_id} has already ended.")
        return
    await send_command(d, card, "say", text=text)
    await update.effective_message.reply_text(f"💬 The agent will say: “{text}”")


async def card_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """[Hang up] [Transfer to me] [Say…] on a live card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    action, _, ident = query.data.partition(":")
    d = deps(context)
    card = d.live.cards.get(int(ident)) if ident.isdigit() else None
    if card is None or card.ended:
        await query.answer("This call has already ended.", show_alert=True)
        return
    if action == "hang":
        await query.answer("Hanging up…")
        await hang_up(d, card)
    elif action == "xfer":
        await query.answer("Transferring to you…")
        await transfer_to(update, context, card, "")
    else:
        await query.answer()
        await prompts.ask(update, context, "say", card.call_id, f"What should the agent say on call "
                          f"#{card.call_id}?")


async def plain_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: the answer to a pending question, else an instruction to the live call's agent."""
    message = update.effective_message
    assert message is not None
    text = (message.text or "").strip()
    if await prompts.answer(update, context, text):
        return
    d = deps(context)
    assert update.effective_chat is not None
    if not d.live.live_in_chat(update.effective_chat.id) and message.reply_to_message is None:
        await message.reply_text(f"{NO_LIVE} /help lists everything I can do.")
        return
    card = await target_call(update, context, "instruct")
    if card is None:
        return
    await send_command(d, card, "instruct", text=text)
    await message.reply_text(f"📝 Passed to the agent on call #{card.call_id}.")


def register(application: Any) -> None:
    prompts.on("say", _say)
    application.add_handler(CommandHandler("hangup", hangup_cmd))
    application.add_handler(CommandHandler("transfer", transfer_cmd))
    application.add_handler(CommandHandler("say", say_cmd))
    application.add_handler(CallbackQueryHandler(card_button, pattern=r"^(hang|xfer|say):"))


def register_last(application: Any) -> None:
    """Plain text that no other handler of group 0 took (so added after all of them)."""
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, plain_text))
