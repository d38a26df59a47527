"""How the bot runs in production: `run_bot` by polling, and in webhook mode mounted on a web app with
the secret token checked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette

from bot.app import run_bot
from shared.bus import InProcessBus
from shared.db import Database
from sim.server import serve
from sim.telegram import TelegramEmulator

OWNER = 31337


def bot_settings(settings_factory: Any, emu: TelegramEmulator, url: str, **extra: Any) -> Any:
    return settings_factory(telegram_bot_token=emu.token, telegram_api_base_url=url,
                            telegram_allowed_users=[OWNER], twilio_account_sid="AC" + "3" * 32,
                            twilio_auth_token="t", twilio_from_number="+12125550100", **extra)


async def test_run_bot_polls_until_cancelled(db: Database, settings_factory: Any) -> None:
    emu = TelegramEmulator()
    async with serve(emu.app) as url:
        settings = bot_settings(settings_factory, emu, url)
        task = asyncio.create_task(run_bot(settings, bus=InProcessBus(), db=db))
        user = emu.user(id=OWNER, first_name="Owner")
        await user.send("/help")
        await user.wait_for("/call <number", timeout=10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_webhook_mode_mounts_a_secret_checked_route(db: Database, settings_factory: Any) -> None:
    emu = TelegramEmulator()
    web_app = Starlette()
    async with serve(emu.app) as url, serve(web_app) as web_url:
        hook = f"{web_url}/telegram/webhook"
        settings = bot_settings(settings_factory, emu, url, telegram_webhook_url=hook,
                                telegram_webhook_secret="s3cret-token")
        task = asyncio.create_task(run_bot(settings, bus=InProcessBus(), db=db, web_app=web_app))
        user = emu.user(id=OWNER, first_name="Owner")
        await user.send("/help")
        await user.wait_for("/call <number", timeout=10)
        assert emu.feed.webhook.url == hook
        async with httpx.AsyncClient() as client:
            forged = await client.post(hook, json={"update_id": 99, "message": {}},
                                       headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            missing = await client.post(hook, json={"update_id": 100})
        assert (forged.status_code, missing.status_code) == (403, 403)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
