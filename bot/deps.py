"""What every handler needs, kept in `application.bot_data` (one place, typed access)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from telegram.ext import Application, CallbackContext

from bot.live import LiveCalls
from shared.bus import EventBus
from shared.calls import CallService
from shared.config import Settings
from shared.db import Database

KEY = "deps"


class Hangup(Protocol):
    """What the bot needs of `shared.twilio_api.Telephony`: the REST hang-up fallback."""

    async def hangup(self, sid: str) -> None: ...


@dataclass
class BotDeps:
    settings: Settings
    db: Database
    bus: EventBus
    calls: CallService
    telephony: Hangup
    live: LiveCalls
    hangup_grace_s: float = 5.0
    """How long a hang-up command may take through the call server before the REST fallback."""


def deps(context: CallbackContext[Any, Any, Any, Any]) -> BotDeps:
    return context.application.bot_data[KEY]  # type: ignore[no-any-return]


def app_deps(application: Application[Any, Any, Any, Any, Any, Any]) -> BotDeps:
    return application.bot_data[KEY]  # type: ignore[no-any-return]
