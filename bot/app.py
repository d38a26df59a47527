"""Build the bot: one Application, every handler module registered in one place.

Feature modules expose `register(application)`; add a new one (e.g. scheduling, issue 6) to
HANDLER_MODULES. Handlers that take whatever is left (plain text as an instruction, unknown commands)
are added after all of them, so a module's own commands and conversations always win.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot import (
    access,
    basics,
    call_flow,
    contacts,
    dnc,
    hints,
    history,
    profile,
    ring_me,
    schedule_handlers,
    steering,
)
from bot.deps import KEY, BotDeps, Hangup
from bot.live import LiveCalls
from bot.runner import BotRunner
from shared.bus import EventBus
from shared.calls import CallService
from shared.config import Settings
from shared.db import Database

HANDLER_MODULES: list[ModuleType] = [access, basics, call_flow, schedule_handlers, steering, history,
                                     contacts, profile, dnc, hints, ring_me]
LAST_MODULES: list[ModuleType] = [steering, basics]


def build_application(settings: Settings, *, db: Database, bus: EventBus, telephony: Hangup,
                      calls: CallService, min_interval_s: float = 1.5, tick_s: float = 10.0,
                      hangup_grace_s: float = 5.0) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot wired to its services; start it with `bot.runner.BotRunner`."""
    base = settings.telegram_api_base_url
    builder = (ApplicationBuilder()
               .token(settings.telegram_bot_token.get_secret_value())
               .base_url(f"{base}/bot")
               .base_file_url(f"{base}/file/bot")
               # Command replies retry a 429 after the wait Telegram asks for; call output has its own
               # per-chat outbox (bot/outbox.py) that never gives up.
               .rate_limiter(AIORateLimiter(max_retries=3)))
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    application = builder.build()
    live = LiveCalls(settings, db, bus, application.bot, min_interval_s=min_interval_s, tick_s=tick_s)
    application.bot_data[KEY] = BotDeps(settings=settings, db=db, bus=bus, calls=calls, telephony=telephony,
                                        live=live, hangup_grace_s=hangup_grace_s)
    for module in HANDLER_MODULES:
        module.register(application)
    for module in LAST_MODULES:
        module.register_last(application)
    return application


async def run_bot(settings: Settings, *, bus: EventBus, db: Database, web_app: Any = None) -> None:
    """Run the bot (and the scheduler) until cancelled: the production entry point used by
    dialer.runtime. In webhook mode the update route is mounted on `web_app` (the call server's app)
    when given, else served on HOST:PORT by a small server of its own (`dialer bot` alone)."""
    import asyncio

    from shared.twilio_api import Telephony

    telephony = Telephony(settings)
    calls = CallService(settings, db, telephony, bus)
    application = build_application(settings, db=db, bus=bus, telephony=telephony, calls=calls)
    server = None
    if settings.telegram_webhook_url:
        from bot.webhook import webhook_route

        route = webhook_route(application, settings.telegram_webhook_url,
                              settings.telegram_webhook_secret.get_secret_value())
        if web_app is not None:
            web_app.router.routes.append(route)
        else:
            import uvicorn
            from starlette.applications import Starlette

            server = uvicorn.Server(uvicorn.Config(Starlette(routes=[route]), host=settings.host,
                                                   port=settings.port, log_config=None, access_log=False))
    try:
        async with BotRunner(application):
            if server is not None:
                await server.serve()
            else:
                await asyncio.Event().wait()
    finally:
        await telephony.close()
