"""The bot on the real python-telegram-bot, talking to sim/'s Telegram and Twilio emulators.

`bot_env` serves both emulators, builds the bot with a fresh database and an in-process bus, starts it
polling, and gives the test an emulated user in a private chat with it. The call server is not running
here: tests publish the events it would publish (see tests/bot/test_e2e_call.py for the real pipeline).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app import build_application
from bot.deps import BotDeps, app_deps
from bot.runner import BotRunner
from shared.bus import InProcessBus
from shared.calls import CallService
from shared.config import Settings
from shared.db import Database
from shared.models import User
from shared.twilio_api import Telephony
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.telegram_chat import EmulatedUser
from sim.telegram_wire import FloodLimits
from sim.twilio import PhoneNetwork, create_app

ACCOUNT, TOKEN, OWN = "AC" + "2" * 32, "twilio-token", "+12125550100"
OWNER_ID, STRANGER_ID = 4242, 777


@dataclass
class BotEnv:
    emu: TelegramEmulator
    net: PhoneNetwork
    settings: Settings
    db: Database
    bus: InProcessBus
    app: Any
    user: EmulatedUser

    @property
    def deps(self) -> BotDeps:
        return app_deps(self.app)


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Settings a test module may change (override this fixture)."""
    return {}


@pytest.fixture
def flood_limits() -> FloodLimits:
    return FloodLimits()


@pytest.fixture
async def bot_env(db: Database, settings_factory, bot_overrides, flood_limits) -> AsyncIterator[BotEnv]:  # type: ignore[no-untyped-def]
    emu = TelegramEmulator(flood_limits=flood_limits)
    net = PhoneNetwork(speed=20, accounts={ACCOUNT: TOKEN})
    async with serve(emu.app) as tg_url, serve(create_app(net)) as tw_url:
        settings = settings_factory(**{
            "telegram_bot_token": emu.token, "telegram_api_base_url": tg_url,
            "telegram_allowed_users": [OWNER_ID], "twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN,
            "twilio_from_number": OWN, "twilio_api_base_url": tw_url, **bot_overrides,
        })
        async with db.session() as s:
            s.add(User(id=OWNER_ID, first_name="Ann", full_name="Ann Lee", organisation="Lee Clinic",
                       callback_number="+12125550199"))
            await s.commit()
        bus = InProcessBus()
        telephony = Telephony(settings)
        calls = CallService(settings, db, telephony, bus)
        app = build_application(settings, db=db, bus=bus, telephony=telephony, calls=calls,
                                min_interval_s=0.2, tick_s=3600, hangup_grace_s=0.5)
        async with BotRunner(app, poll_timeout_s=1):
            yield BotEnv(emu, net, settings, db, bus, app, emu.user(id=OWNER_ID, first_name="Ann"))
        await telephony.close()
