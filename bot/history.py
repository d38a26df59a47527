"""Past calls: /calls, /transcript, and the summary's [Full transcript] [Recording] [Call again] buttons."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from loguru import logger
from sqlmodel import col, select
from telegram import InputFile, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from bot.call_flow import offer
from bot.cards import callee_name, elapsed
from bot.deps import deps
from shared.calls import CallRefused
from shared.models import Call, TranscriptLine

RECENT = 10
SPEAKERS = {"agent": "Agent", "callee": "Callee", "owner": "You", "system": "Note"}


async def _own_call(update: Update, context: ContextTypes.DEFAULT_TYPE, call_id: int) -> Call | None:
    async with deps(context).db.session() as s:
        call = await s.get(Call, call_id)
    user_id = update.effective_user.id if update.effective_user else 0
    if call is None or (call.owner_id not in (None, user_id)):
        return None
    return call


def transcript_document(call: Call, lines: list[TranscriptLine]) -> str:
    """The .txt transcript: a header, then one line per utterance with its offset into the call."""
    head = [f"Call #{call.id} ({call.direction}) with {callee_name(call)}",
            f"Placed: {call.created_at:%Y-%m-%d %H:%M} UTC" if call.created_at else "",
            f"Task: {call.task}" if call.task else "",
            f"Status: {call.status}; outcome: {call.outcome or '-'}; "
            f"duration {elapsed(call.duration_s or 0)}",
            ""]
    body = []
    for line in lines:
        who = SPEAKERS.get(line.speaker, line.speaker)
        cut = " [interrupted]" if line.interrupted else ""
        body.append(f"[{elapsed(line.offset_ms / 1000)}] {who}: {line.text}{cut}")
    if call.summary:
        body += ["", "Summary:", call.summary]
    return "\n".join([h for h in head if h is not None] + body) + "\n"


async def send_transcript(update: Update, context: ContextTypes.DEFAULT_TYPE, call_id: int) -> None:
    chat_id = update.effective_chat.id if update.effective_chat else 0
    call = await _own_call(update, context, call_id)
    if call is None:
        await context.bot.send_message(chat_id, f"There is no call #{call_id}. /calls lists your calls.")
        return
    async with deps(context).db.session() as s:
        lines = list((await s.exec(select(TranscriptLine).where(TranscriptLine.call_id == call_id)
                                   .order_by(col(TranscriptLine.seq)))).all())
    if not lines:
        await context.bot.send_message(chat_id, f"Call #{call_id} has no transcript: nothing was said.")
        return
    data = transcript_document(call, lines).encode()
    await context.bot.send_document(chat_id, InputFile(data, filename=f"call-{call_id}-transcript.txt"),
                                    caption=f"Transcript of call #{call_id} ({len(lines)} lines)")


async def calls_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/calls: your recent calls."""
    assert update.effective_message is not None and update.effective_user is not None
    async with deps(context).db.session() as s:
        calls = (await s.exec(select(Call).where(Call.owner_id == update.effective_user.id)
                              .order_by(col(Call.id).desc()).limit(RECENT))).all()
    if not calls:
        await update.effective_message.reply_text("No calls yet. Place one: /call <number> <task>.")
        return
    rows = [f"#{c.id} · {c.created_at:%b %d %H:%M} · {callee_name(c)} · {c.outcome or c.status}"
            + (f" · {elapsed(c.duration_s)}" if c.duration_s else "") for c in calls]
    await update.effective_message.reply_text("Recent calls:\n" + "\n".join(rows)
                                              + "\n\n/transcript <number> sends a call's transcript.")


async def transcript_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/transcript <call>: the full transcript as a .txt file."""
    assert update.effective_message is not None
    arg = (context.args or [""])[0].lstrip("#")
    if not arg.isdigit():
        await update.effective_message.reply_text("Which call? e.g. /transcript 12 (see /calls).")
        return
    await send_transcript(update, context, int(arg))


async def summary_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """[Full transcript] [Recording] [Call again] under a summary."""
    query = update.callback_query
    assert query is not None and query.data is not None
    action, _, ident = query.data.partition(":")
    call = await _own_call(update, context, int(ident)) if ident.isdigit() else None
    if call is None or call.id is None:
        await query.answer("This call is no longer available.", show_alert=True)
        return
    await query.answer()
    if action == "tx":
        await send_transcript(update, context, call.id)
    elif action == "rec":
        await send_recording(update, context, call)
    else:
        await call_again(update, context, call)


async def send_recording(update: Update, context: ContextTypes.DEFAULT_TYPE, call: Call) -> None:
    chat_id = update.effective_chat.id if update.effective_chat else 0
    settings = deps(context).settings
    url = call.recording_url
    if not url:
        await context.bot.send_message(chat_id, f"Call #{call.id} was not recorded.")
        return
    if not url.rsplit("/", 1)[-1].count("."):
        url += ".wav"  # Twilio serves a recording's media at its URI with the format as extension
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(url, auth=(settings.twilio_account_sid,
                                                   settings.twilio_auth_token.get_secret_value()))
            response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("bot: recording of call {} unavailable: {}", call.id, exc)
        await context.bot.send_message(chat_id, f"The recording of call #{call.id} is not available right "
                                       "now; try again in a minute.")
        return
    await context.bot.send_audio(chat_id, InputFile(response.content, filename=f"call-{call.id}.wav"),
                                 caption=f"Recording of call #{call.id}")


async def call_again(update: Update, context: ContextTypes.DEFAULT_TYPE, call: Call) -> None:
    chat_id = update.effective_chat.id if update.effective_chat else 0
    user_id = update.effective_user.id if update.effective_user else 0
    try:
        request = await deps(context).calls.prepare(user_id, call.to_number, call.task)
    except CallRefused as exc:
        await context.bot.send_message(chat_id, f"I can't place that call again: {exc}.")
        return
    contact = (call.options or {}).get("contact") or ""
    await offer(update, context, dataclasses.replace(request, contact_name=contact))


def register(application: Any) -> None:
    application.add_handler(CommandHandler("calls", calls_cmd))
    application.add_handler(CommandHandler("transcript", transcript_cmd))
    application.add_handler(CallbackQueryHandler(summary_button, pattern=r"^(tx|rec|again):"))
