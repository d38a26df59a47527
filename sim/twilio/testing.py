"""Helpers for tests and demos that drive the emulator: an official SDK client pointed at it, and a
webhook receiver that records Twilio's signed requests and answers them with TwiML."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client


def twilio_client(base_url: str, account_sid: str, auth_token: str, asynchronous: bool = False) -> Client:
    """The real SDK with its API domain pointed at the emulator (edge/region logic bypassed)."""
    client = Client(account_sid, auth_token, http_client=AsyncTwilioHttpClient() if asynchronous else None)
    client.api.base_url = base_url
    return client


@dataclass
class Hit:
    path: str
    url: str
    params: dict[str, str]
    signature: str | None
    at: float


@dataclass
class WebhookReceiver:
    """Records every request; ``twiml`` maps a path to the TwiML to answer (str or a callable)."""

    twiml: dict[str, str | Callable[[Hit], str]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    base_url: str = ""
    _arrived: asyncio.Event | None = None

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = (await request.body()).decode()
            params = dict(parse_qsl(body)) if body else dict(request.query_params)
            hit = Hit(request.url.path, str(request.url), params, request.headers.get("x-twilio-signature"),
                      asyncio.get_running_loop().time())
            self.hits.append(hit)
            if self._arrived is not None:
                self._arrived.set()
            answer = self.twiml.get(request.url.path, "")
            text = answer(hit) if callable(answer) else answer
            return Response(text or "<Response/>", media_type="application/xml")

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait_for(self, predicate: Callable[[list[Hit]], Any], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.hits):
                self._arrived = asyncio.Event()
                await self._arrived.wait()
