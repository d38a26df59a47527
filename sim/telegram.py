"""Telegram Bot API emulator: an ASGI app the real python-telegram-bot talks to, plus test-side users.

Followed: core.telegram.org/bots/api#making-requests (``/bot<token>/<method>``, GET or POST, 401
"Unauthorized" for a wrong token, 404 "Not Found" for a malformed token or unknown method), #getme,
#file (``/file/bot<token>/<file_path>`` downloads) and core.telegram.org/bots/faq (flood limits). The
methods live in :mod:`sim.telegram_api`, update delivery in :mod:`sim.telegram_updates`, formatting in
:mod:`sim.telegram_markup`, wire helpers and flood control in :mod:`sim.telegram_wire`.

Usage (same event loop as the bot)::

    emu = TelegramEmulator(bot_token="123456:TEST", bot_username="dialer_test_bot")
    async with serve(emu.app) as url:
        app = ApplicationBuilder().token(emu.token).base_url(f"{url}/bot") \\
            .base_file_url(f"{url}/file/bot").build()
        user = emu.user(id=42, first_name="Ann")
        await user.send("/start")
        reply = await user.wait_for("Welcome")
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sim.faults import Faults
from sim.telegram_api import METHODS
from sim.telegram_chat import CallbackState, Changes, ChatState, EmulatedUser, StoredFile
from sim.telegram_updates import UpdateFeed, client_gone
from sim.telegram_wire import ApiError, FloodControl, FloodLimits, Upload, ok, read_params

_TOKEN_RE = re.compile(r"^\d+:[\w-]+$")


@dataclass(frozen=True)
class LoggedRequest:
    """One Bot API call as the emulator received it (JSON-valued fields decoded)."""

    method: str
    params: dict[str, Any]
    files: dict[str, Upload]
    status: int
    at: float


class TelegramEmulator:
    """One bot's view of Telegram: its chats, files, commands, updates and flood limits."""

    def __init__(self, bot_token: str = "123456789:AAEmulatedBotTokenForTests_0123456789",
                 bot_username: str = "dialer_test_bot", *, bot_first_name: str = "Dialer",
                 flood_limits: FloodLimits | None = None, callback_timeout_s: float = 15.0,
                 webhook_retry_s: float = 0.2) -> None:
        if not _TOKEN_RE.match(bot_token):
            raise ValueError("a bot token looks like '<bot id>:<secret>'")
        self.token = bot_token
        self.bot: dict[str, Any] = {"id": int(bot_token.split(":")[0]), "is_bot": True,
                                    "first_name": bot_first_name, "username": bot_username}
        self.faults = Faults()
        self.flood = FloodControl(flood_limits or FloodLimits())
        self.callback_timeout_s = callback_timeout_s
        self.feed = UpdateFeed(webhook_retry_s)
        self.changes = Changes()
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.callbacks: dict[str, CallbackState] = {}
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.log: list[LoggedRequest] = []
        self.app = Starlette(routes=[
            Route("/bot{token}/{method}", self._call, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
        ], lifespan=self._lifespan)

    # -- test side -------------------------------------------------------------------------------

    def user(self, id: int = 1001, first_name: str = "Test", username: str | None = None,
             last_name: str | None = None, language_code: str = "en") -> EmulatedUser:
        """A user with a private chat open with the bot (chat id == user id)."""
        user: dict[str, Any] = {"id": id, "is_bot": False, "first_name": first_name,
                                "language_code": language_code}
        chat: dict[str, Any] = {"id": id, "type": "private", "first_name": first_name}
        for key, value in (("last_name", last_name), ("username", username)):
            if value:
                user[key] = chat[key] = value
        self.chats.setdefault(id, ChatState(chat))
        return EmulatedUser(self, user)

    def group(self, id: int = -1001234567890, title: str = "Test group") -> ChatState:
        """A supergroup the bot is a member of (negative id: group flood limits apply)."""
        return self.chats.setdefault(id, ChatState({"id": id, "type": "supergroup", "title": title}))

    def chat_state(self, chat_id: int) -> ChatState:
        return self.chats[chat_id]

    def requests(self, method: str | None = None) -> list[LoggedRequest]:
        """Logged calls, all or of one method (case-insensitive), oldest first."""
        return [r for r in self.log if method is None or r.method.lower() == method.lower()]

    @property
    def rejected_429(self) -> int:
        """How many flood-limit 429s were served (fault-injected ones are in ``faults.failed``)."""
        return self.flood.rejected

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = self.feed.push(kind, payload)
        self.changes.notify()
        return update

    def store_file(self, kind: str, data: bytes, file_name: str, mime_type: str) -> StoredFile:
        digest = hashlib.sha256(data + file_name.encode()).hexdigest()
        stored = StoredFile(f"BQACAgIAAx{kind[:2].upper()}{digest[:40]}", f"AgAD{digest[:12]}", kind, data,
                            file_name, mime_type or "application/octet-stream")
        self.files[stored.file_id] = stored
        return stored

    def file_object(self, stored: StoredFile, kind: str | None = None) -> dict[str, Any]:
        media: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                                 "file_size": len(stored.data), "mime_type": stored.mime_type}
        if (kind or stored.kind) != "voice":
            media["file_name"] = stored.file_name
        return media

    async def close(self) -> None:
        """Stop webhook delivery (also done when the ASGI app shuts down)."""
        await self.feed.close()

    # -- server side -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.close()

    def _check_token(self, token: str) -> None:
        if not _TOKEN_RE.match(token):
            raise ApiError(404, "Not Found")
        if token != self.token:
            raise ApiError(401, "Unauthorized")

    async def _fault(self, request: Request) -> Response | None:
        faults = self.faults
        if faults.stall:
            # Hold the request until the client gives up, so server shutdown is not blocked by it.
            await client_gone(request)
            return Response(status_code=499)
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        status = faults.take_http_failure()
        if status is None:
            return None
        if status in (502, 504):
            # Telegram's front-end answers these with an nginx HTML page, not JSON.
            return HTMLResponse(f"<html><head><title>{status}</title></head></html>", status_code=status)
        retry = faults.retry_after_s if status == 429 else None
        description = f"Too Many Requests: retry after {retry}" if retry else "Internal Server Error"
        return ApiError(status, description, retry).response()

    async def _call(self, request: Request) -> Response:
        name = request.path_params["method"]
        params: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        try:
            self._check_token(request.path_params["token"])
            params, uploads = await read_params(request)
            faulted = await self._fault(request)
            if faulted is not None:
                response = faulted
            else:
                response = ok(await self._dispatch(name, params, uploads, request))
        except ApiError as error:
            response = error.response()
        self.log.append(LoggedRequest(name, params, uploads, response.status_code, time.time()))
        return response

    async def _dispatch(self, name: str, params: dict[str, Any], uploads: dict[str, Upload],
                        request: Request) -> Any:
        key = name.lower()
        feed = self.feed
        if key == "getme":
            return {**self.bot, "can_join_groups": True, "can_read_all_group_messages": False,
                    "supports_inline_queries": False, "can_connect_to_business": False,
                    "has_main_web_app": False}
        if key == "getupdates":
            return await feed.get_updates(params, request)
        if key == "setwebhook":
            return feed.set_webhook(params)
        if key == "deletewebhook":
            return feed.delete_webhook(params)
        if key == "getwebhookinfo":
            return feed.webhook_info()
        if key in ("logout", "close"):
            return True
        handler = METHODS.get(key)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(self, params, uploads)

    async def _download(self, request: Request) -> Response:
        try:
            self._check_token(request.path_params["token"])
        except ApiError as error:
            return error.response()
        path = request.path_params["path"]
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        if stored is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        return Response(stored.data, media_type=stored.mime_type)
