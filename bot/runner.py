"""Run the bot inside an existing event loop (next to the call server): polling by default, webhook
when TELEGRAM_WEBHOOK_URL is set (the update route is mounted by runtime, see bot/webhook.py)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from loguru import logger
from telegram import Update
from telegram.ext import Application

from bot import schedule_handlers
from bot.deps import app_deps
from bot.texts import bot_commands


class BotRunner:
    """`async with BotRunner(app):` initialises, sets the command menu, starts the live view and the
    update source; leaving stops them in reverse order."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], *,
                 poll_interval_s: float = 0.0, poll_timeout_s: int = 10) -> None:
        self.application = application
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s

    async def start(self) -> None:
        app = self.application
        d = app_deps(app)
        settings = d.settings
        await app.initialize()
        await app.bot.set_my_commands(bot_commands())
        await d.live.start()
        await schedule_handlers.start(app)  # issue 6: scheduled calls
        await app.start()
        if settings.telegram_webhook_url:
            secret = settings.telegram_webhook_secret.get_secret_value() or None
            await app.bot.set_webhook(settings.telegram_webhook_url, allowed_updates=Update.ALL_TYPES,
                                      secret_token=secret)
            logger.info("bot: webhook mode at {}", settings.telegram_webhook_url)
        else:
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=self.poll_interval_s, timeout=self.poll_timeout_s,
                                            allowed_updates=Update.ALL_TYPES)
            logger.info("bot: polling for updates")

    async def stop(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await schedule_handlers.stop(app)  # issue 6: scheduled calls
        await app_deps(app).live.stop()
        await app.shutdown()

    async def __aenter__(self) -> BotRunner:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
