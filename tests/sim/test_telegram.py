"""The Telegram Bot API emulator driven by the real python-telegram-bot (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_markup import render
from sim.telegram_wire import ApiError, FloodLimits

TRANSCRIPT = b"Agent: hello\r\nCallee: hi\x00\xff binary tail\r\n"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    emu = TelegramEmulator(bot_username="dialer_test_bot", flood_limits=FloodLimits.relaxed())
    async with serve(emu.app) as url:
        yield emu, url


def make_bot(emu: TelegramEmulator, url: str, token: str | None = None) -> Bot:
    return Bot(token or emu.token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with a confirmation keyboard."""
    keyboard = [[InlineKeyboardButton("Call now", callback_data="call"),
                 InlineKeyboardButton("Cancel", callback_data="cancel")]]
    await update.effective_message.reply_text("Welcome! Call +12125550100?",
                                              reply_markup=InlineKeyboardMarkup(keyboard))


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the query, then edit the card in place (dropping its buttons)."""
    query = update.callback_query
    await query.answer("Dialing…")
    await query.edit_message_text(f"<b>Chose</b> {query.data}", parse_mode="HTML")


async def send_doc(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the transcript as a file."""
    await update.effective_message.reply_document(InputFile(TRANSCRIPT, filename="transcript.txt"),
                                                  caption="Full transcript")


def build_app(emu: TelegramEmulator, url: str, rate_limiter: AIORateLimiter | None = None) -> Application:
    builder = (ApplicationBuilder().token(emu.token).base_url(f"{url}/bot")
               .base_file_url(f"{url}/file/bot"))
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter)
    app = builder.build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("doc", send_doc))
    app.add_handler(CallbackQueryHandler(pressed))
    return app


@contextlib.asynccontextmanager
async def polling(app: Application) -> AsyncIterator[Application]:
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=2))
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


def seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_command_reaches_handler_and_button_press_edits_card(sim):
    emu, url = sim
    user = emu.user(id=4242, first_name="Ann", username="ann")
    async with polling(build_app(emu, url)):
        command = await user.send("/start")
        assert command.raw["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        card = await user.wait_for(r"^Welcome", timeout=5)
        assert card.buttons == [["Call now", "Cancel"]]
        assert card.raw["chat"]["id"] == user.id == 4242

        press = await user.press(card, "Call now")
        answer = await press.wait_answered(timeout=5)
        assert answer["text"] == "Dialing…" and answer["show_alert"] is False
        edited = await user.wait_for(lambda m: m.id == card.id and m.edited, timeout=5)
        assert edited.text == "Chose call"
        assert edited.raw["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
        assert edited.buttons == []
    assert [m.text for m in user.chat()] == ["/start", "Chose call"]
    assert [r.params["text"] for r in emu.requests("editMessageText")] == ["<b>Chose</b> call"]
    assert emu.requests("getMe") and emu.requests("deleteWebhook")


async def test_second_answer_or_stale_query_is_rejected(sim):
    emu, url = sim
    emu.callback_timeout_s = 0.2
    user = emu.user(id=7)
    async with make_bot(emu, url) as bot:
        card = await bot.send_message(user.id, "Card", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("Hang up", callback_data="hangup:1")]]))
        first = await user.press(card.message_id, "hangup:1")
        assert await bot.answer_callback_query(first.state.query_id, text="Bye", show_alert=True)
        assert first.answered and first.answer["show_alert"] is True
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(first.state.query_id)
        stale = await user.press(card.message_id, "Hang up")
        await asyncio.sleep(0.3)
        with pytest.raises(BadRequest, match=r"(?i)query is too old and response timeout expired"):
            await bot.answer_callback_query(stale.state.query_id)
        with pytest.raises(LookupError):
            await user.press(card.message_id, "Transfer")


async def test_edit_errors_match_the_bot_api(sim):
    emu, url = sim
    user = emu.user(id=8)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Hang up", callback_data="h")]])
    async with make_bot(emu, url) as bot:
        sent = await bot.send_message(user.id, "Live: ringing", reply_markup=markup)
        with pytest.raises(BadRequest, match="Message is not modified: specified new message content"):
            await bot.edit_message_text("Live: ringing", user.id, sent.message_id, reply_markup=markup)
        # Same text without the keyboard is a change: Telegram drops the buttons.
        edited = await bot.edit_message_text("Live: ringing", user.id, sent.message_id)
        assert edited.reply_markup is None and edited.edit_date is not None
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_reply_markup(user.id, sent.message_id)
        await bot.edit_message_reply_markup(user.id, sent.message_id, reply_markup=markup)
        assert user.last().buttons == [["Hang up"]]
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", user.id, 999)
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(user.id, "<b></b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(user.id, "x" * 4097)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(555, "hello")
        with pytest.raises(BadRequest, match="Can't parse entities: can't find end tag"):
            await bot.send_message(user.id, "<b>open", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
            await bot.send_message(user.id, "Done.", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await bot.send_message(user.id, "x", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("Too long", callback_data="d" * 65)]]))
        ok_md = await bot.send_message(user.id, "*Call* ended\\.", parse_mode="MarkdownV2")
        assert ok_md.text == "Call ended." and ok_md.entities[0].type == "bold"

        assert await bot.delete_message(user.id, sent.message_id)
        assert sent.message_id not in [m.id for m in user.chat()]
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await bot.delete_message(user.id, sent.message_id)
        user.block()
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(user.id, "still there?")


async def test_flooded_chat_gets_retry_after(sim):
    emu, url = sim
    emu.flood.limits = FloodLimits(chat_per_second=1.0, chat_burst=3)
    user = emu.user(id=9)
    async with make_bot(emu, url) as bot:
        for i in range(3):
            await bot.send_message(user.id, f"burst {i}")
        with pytest.raises(RetryAfter) as private:
            await bot.edit_message_text("edits count too", user.id, 1)
        assert seconds(private.value) == 1
        assert "Too Many Requests: retry after 1" in private.value.message or private.value.message

        group = emu.group(id=-1009876543210)
        emu.flood.limits = FloodLimits(chat_burst=100, group_per_minute=20)
        for i in range(20):
            await bot.send_message(group.id, f"group {i}")
        with pytest.raises(RetryAfter) as grouped:
            await bot.send_message(group.id, "one too many")
        assert seconds(grouped.value) == 3
    assert emu.rejected_429 == 2
    assert [r.status for r in emu.requests("sendMessage")][-1] == 429


async def test_aio_rate_limiter_delivers_burst_complete_and_in_order(sim):
    emu, url = sim
    # Per-chat bucket compressed in time (20 at once, 10/s) so the retry costs ~1 s, not ~30 s.
    emu.flood.limits = FloodLimits(chat_per_second=10.0, chat_burst=20)
    user = emu.user(id=10)
    app = build_app(emu, url, rate_limiter=AIORateLimiter(max_retries=3))
    async with app:
        started = time.monotonic()
        for i in range(30):
            await app.bot.send_message(user.id, f"line {i}")
        elapsed = time.monotonic() - started
    assert [m.text for m in user.chat()] == [f"line {i}" for i in range(30)]
    assert emu.rejected_429 >= 1
    assert elapsed < 5


async def test_webhook_delivery_with_secret_header_and_retry(sim):
    emu, url = sim
    app = build_app(emu, url)
    received: list[tuple[int, str | None]] = []

    async def hook(request: Request) -> Response:
        """Our side of the webhook: check the secret, feed PTB (the customwebhookbot pattern)."""
        body = await request.json()
        secret = request.headers.get("x-telegram-bot-api-secret-token")
        received.append((body["update_id"], secret))
        if len(received) == 1:
            return Response(status_code=500)
        await app.update_queue.put(Update.de_json(body, app.bot))
        return Response()

    user = emu.user(id=11)
    async with serve(Starlette(routes=[Route("/tg", hook, methods=["POST"])])) as hook_url, app:
        await app.start()
        assert await app.bot.set_webhook(f"{hook_url}/tg", secret_token="s3cret-token")
        with pytest.raises(Conflict, match="webhook is active"):
            await app.bot.get_updates()
        command = await user.send("/start")
        await user.wait_for("^Welcome", timeout=5)
        info = await app.bot.get_webhook_info()
        assert info.url == f"{hook_url}/tg" and info.pending_update_count == 0
        assert "500" in info.last_error_message and info.last_error_date is not None
        await app.bot.delete_webhook()
        assert (await app.bot.get_webhook_info()).url == ""
        await app.stop()
    update_id = emu.feed.webhook.deliveries[0]["update_id"]
    assert received == [(update_id, "s3cret-token"), (update_id, "s3cret-token")]
    assert [d["status"] for d in emu.feed.webhook.deliveries] == [500, 200]
    assert command.id == 1


async def test_unknown_token_is_invalid_and_unknown_method_404(sim):
    emu, url = sim
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with make_bot(emu, url, token="1:wrong-token"):
            pass
    async with httpx.AsyncClient() as client:
        bad_format = await client.get(f"{url}/botnot-a-token/getMe")
        unknown = await client.post(f"{url}/bot{emu.token}/noSuchMethod")
        via_json = await client.post(f"{url}/bot{emu.token}/getme", json={})
    assert bad_format.status_code == 404 and bad_format.json()["ok"] is False
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert via_json.json()["result"]["username"] == "dialer_test_bot"


async def test_document_upload_is_readable_by_user_and_bot(sim):
    emu, url = sim
    user = emu.user(id=12)
    async with polling(build_app(emu, url)) as app:
        command = await user.send("/doc")
        message = await user.wait_for(lambda m: m.file is not None, timeout=5, after=command)
        assert message.text == "Full transcript"
        assert message.file.kind == "document" and message.file.file_name == "transcript.txt"
        assert message.file.data == TRANSCRIPT and message.file.mime_type == "text/plain"
        tg_file = await app.bot.get_file(message.file.file_id)
        assert bytes(await tg_file.download_as_bytearray()) == TRANSCRIPT
        voice = await app.bot.send_voice(user.id, InputFile(b"OggS-fake", filename="v.ogg"), duration=2)
        assert voice.voice.duration == dtm.timedelta(seconds=2) or voice.voice.duration == 2
        audio = await app.bot.send_audio(user.id, message.file.file_id, title="Call")
        assert audio.audio.file_id == message.file.file_id and audio.audio.title == "Call"
    upload = emu.requests("sendDocument")[0]
    assert upload.files["document"].filename == "transcript.txt"


async def test_get_updates_waits_for_timeout_or_first_update(sim):
    emu, url = sim
    user = emu.user(id=13)
    async with make_bot(emu, url) as bot:
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert 0.9 <= time.monotonic() - started < 2

        started = time.monotonic()
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        sent = await user.send("hello")
        updates = await poll
        assert time.monotonic() - started < 1
        assert [u.message.text for u in updates] == ["hello"]
        assert updates[0].message.message_id == sent.id

        again = await bot.get_updates(timeout=0)
        assert [u.update_id for u in again] == [updates[0].update_id]
        assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()

        await user.send("second")
        await user.press(await bot.send_message(user.id, "k", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("b", callback_data="b")]])), "b")
        only_queries = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
        assert [u.callback_query.data for u in only_queries] == ["b"]

        # A second bot instance polling ends the first poll, as on Telegram.
        first = asyncio.create_task(bot.get_updates(offset=only_queries[0].update_id + 1, timeout=5))
        await asyncio.sleep(0.1)
        async with make_bot(emu, url) as second_instance:
            await second_instance.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first


async def test_commands_drafts_chat_actions_and_faults(sim):
    emu, url = sim
    user = emu.user(id=14)
    async with make_bot(emu, url) as bot:
        await bot.set_my_commands([("call", "Place a call"), ("help", "How to use me")])
        assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
            ("call", "Place a call"), ("help", "How to use me")]
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            await bot.set_my_commands([("Bad-Command", "x")])
        assert await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()

        assert await bot.send_message_draft(user.id, draft_id=5, text="Callee: hel")
        assert await bot.send_message_draft(user.id, draft_id=5, text="Callee: hello")
        assert user.drafts[5]["text"] == "Callee: hello"
        assert user.chat() == []
        assert await bot.send_chat_action(user.id, "typing")
        assert user.chat_actions == ["typing"]

        emu.faults.http_status, emu.faults.fail_count = 500, 1
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(user.id, "during outage")
        emu.faults.http_status, emu.faults.fail_count, emu.faults.failed = 502, 1, 0
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(user.id, "during outage")
        assert (await bot.send_message(user.id, "after outage")).text == "after outage"
        emu.faults.http_status, emu.faults.fail_count, emu.faults.failed = 429, 1, 0
        emu.faults.retry_after_s = 7
        with pytest.raises(RetryAfter) as flood:
            await bot.send_message(user.id, "flooded")
        assert seconds(flood.value) == 7
    assert [m.text for m in user.chat()] == ["after outage"]


async def test_stalled_api_holds_requests_until_the_client_gives_up(sim):
    emu, url = sim
    emu.faults.stall = True
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/bot{emu.token}/getMe")
    emu.faults.stall = False
    async with make_bot(emu, url) as bot:
        assert (await bot.get_me()).username == "dialer_test_bot"


def test_formatting_becomes_plain_text_and_utf16_entities():
    text, entities = render('Call <b>Ann 📞</b> &amp; <a href="https://x.y/z">log</a>', "HTML", None)
    assert text == "Call Ann 📞 & log"
    assert entities == [{"type": "bold", "offset": 5, "length": 6},
                        {"type": "text_link", "offset": 14, "length": 3, "url": "https://x.y/z"}]
    with pytest.raises(ApiError, match='Unsupported start tag "div" at byte offset 0'):
        render("<div>x</div>", "HTML", None)
    with pytest.raises(ApiError, match='Unmatched end tag at byte offset 7, expected "</i>"'):
        render("<b><i>x</b></i>", "HTML", None)
    text, entities = render(r"__u__ ||s|| `a.b` [go](https://e.x) 1\+1", "MarkdownV2", None)
    assert text == "u s a.b go 1+1"
    assert [e["type"] for e in entities] == ["underline", "spoiler", "code", "text_link"]
    with pytest.raises(ApiError, match="Can't find end of Bold entity at byte offset 0"):
        render("*open", "MarkdownV2", None)
    assert render("*b* _i_", "Markdown", None) == ("b i", [{"type": "bold", "offset": 0, "length": 1},
                                                          {"type": "italic", "offset": 2, "length": 1}])
    given = [{"type": "bold", "offset": 0, "length": 1}]
    assert render("<b>", "HTML", given) == ("<b>", given)
