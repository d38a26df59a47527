"""Webhook mode: a starlette route that feeds Telegram's updates into the Application's queue
(PTB's customwebhookbot/starlettebot example), mounted on the call server's app by dialer/runtime.

Telegram sends the secret given to setWebhook in `X-Telegram-Bot-Api-Secret-Token`
(core.telegram.org/bots/api#setwebhook); anything without it is refused with 403.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlparse

from loguru import logger
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_route(application: Application[Any, Any, Any, Any, Any, Any], webhook_url: str,
                  secret: str) -> Route:
    """POST <path of webhook_url>: check the secret, queue the update, answer 200 at once."""
    path = urlparse(webhook_url).path or "/telegram/webhook"

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if secret and not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except Exception as exc:  # a malformed body is Telegram's (or an attacker's) problem, not ours
            logger.warning("bot: bad webhook body: {}", exc)
            return Response(status_code=400)
        await application.update_queue.put(update)
        return Response()

    return Route(path, receive, methods=["POST"])
