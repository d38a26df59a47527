"""The call server: a FastAPI app whose lifespan owns the HTTP clients, the call registry and the writer.

Routes: `/twilio/voice`, `/twilio/status`, `/twilio/amd` (webhooks), `/twilio/media` (WebSocket), `/healthz`.
The database and bus are passed in (the composition root in dialer/runtime.py owns them), so the same app
runs alone, next to the bot in one process, or against the emulators in tests and the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from callserver import media_ws, webhooks
from callserver.call_log import CallLogWriter
from callserver.registry import Registry, Services, SessionFactory
from shared.bus import EventBus
from shared.config import Settings
from shared.db import Database
from shared.twilio_api import Telephony


def create_app(settings: Settings, *, bus: EventBus, db: Database, providers: Any = None,
               telephony: Telephony | None = None, session_factory: SessionFactory | None = None) -> FastAPI:
    """The call server app; `providers`/`telephony` default to the real ones built from settings."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_telephony = telephony is None
        phone = telephony or Telephony(settings)
        own_providers = providers is None and session_factory is None
        if own_providers:
            from callserver.providers import build_providers

            built = build_providers(settings)
        else:
            built = providers
        services = Services(settings=settings, bus=bus, db=db, telephony=phone, providers=built)
        registry = Registry(services, session_factory)
        app.state.services = services
        app.state.registry = registry
        await registry.start()
        try:
            yield
        finally:
            await registry.close()
            await CallLogWriter.for_(bus, db).close()
            if own_telephony:
                await phone.close()
            if own_providers:
                await _aclose(built)

    app = FastAPI(title="dialer call server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(webhooks.router)
    app.include_router(media_ws.router)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        registry: Registry | None = getattr(app.state, "registry", None)
        return {"ok": True, "calls": registry.active_count() if registry else 0}

    return app


async def _aclose(providers: Any) -> None:
    """Close whatever the providers hold open (HTTP clients), whichever close method they offer."""
    for name in ("aclose", "close"):
        method = getattr(providers, name, None)
        if method is not None:
            result = method()
            if inspect.isawaitable(result):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(result, 5)
            return
