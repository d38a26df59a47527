"""Update delivery for the Telegram emulator: getUpdates long polling and webhooks.

Followed: core.telegram.org/bots/api#getting-updates. getUpdates: ``offset`` confirms every update
with a smaller id (a negative one keeps only the last ones), ``limit`` 1-100, ``timeout`` is a real
long-poll wait that ends as soon as an update arrives, ``allowed_updates`` sticks for later calls and
defaults to every type except chat_member, message_reaction and message_reaction_count; a second
poller ends the first with 409 "Conflict: terminated by other getUpdates request", and with a webhook
set getUpdates answers 409 too. setWebhook: updates are POSTed as JSON to the URL, with the
``X-Telegram-Bot-Api-Secret-Token`` header when a secret_token was set; a non-2xx answer is retried
later and reported by getWebhookInfo (last_error_date, last_error_message, pending_update_count).
Deviation: plain http URLs (127.0.0.1) are accepted, since tests have no TLS certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from sim.telegram_wire import ApiError, bad_request, bool_param, int_param

_DEFAULT_EXCLUDED = {"chat_member", "message_reaction", "message_reaction_count"}
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass
class Webhook:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    """Every delivery attempt: update_id, status (or error) and the headers sent."""


async def client_gone(request: Request) -> None:
    """Return once the HTTP client has closed the connection (call after the body was read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class UpdateFeed:
    """Pending updates of one bot, handed out by getUpdates or pushed to a webhook."""

    def __init__(self, webhook_retry_s: float = 0.2) -> None:
        self.pending: list[dict[str, Any]] = []
        self.next_id = 100_000_001
        self.allowed: list[str] | None = None
        self.webhook = Webhook()
        self.webhook_retry_s = webhook_retry_s
        self._poll_generation = 0
        self._wake: asyncio.Event | None = None
        self._delivery: asyncio.Task[None] | None = None

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self.next_id, kind: payload}
        self.next_id += 1
        self.pending.append(update)
        self._notify()
        return update

    def _allowed(self, update: dict[str, Any], allowed: list[str] | None) -> bool:
        kind = next(key for key in update if key != "update_id")
        return kind in allowed if allowed else kind not in _DEFAULT_EXCLUDED

    async def get_updates(self, params: dict[str, Any], request: Request) -> list[dict[str, Any]]:
        if self.webhook.url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = int_param(params, "offset", 0) or 0
        limit = min(max(int_param(params, "limit", 100) or 100, 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if "allowed_updates" in params:
            self.allowed = params["allowed_updates"] or None
        if offset < 0:
            self.pending = self.pending[offset:]
        elif offset:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        gone = asyncio.ensure_future(client_gone(request))
        try:
            while True:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that "
                                        "only one bot instance is running")
                self.pending = [u for u in self.pending if self._allowed(u, self.allowed)]
                remaining = deadline - loop.time()
                if self.pending or remaining <= 0:
                    return self.pending[:limit]
                woken = asyncio.ensure_future(self._event().wait())
                await asyncio.wait({woken, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if gone.done():
                    return []
        finally:
            gone.cancel()

    def set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return self.delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = params.get("secret_token")
        if secret and not _SECRET_RE.match(str(secret)):
            raise bad_request("bad webhook: Secret token contains unallowed characters")
        if bool_param(params, "drop_pending_updates"):
            self.pending.clear()
        allowed = params.get("allowed_updates")
        self.webhook = Webhook(url=url, secret_token=str(secret) if secret else None,
                               max_connections=int_param(params, "max_connections", 40) or 40,
                               allowed_updates=allowed or None, deliveries=self.webhook.deliveries)
        if allowed is not None:
            self.allowed = allowed or None
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.get_running_loop().create_task(self._deliver())
        self._notify()
        return True

    def delete_webhook(self, params: dict[str, Any]) -> bool:
        if bool_param(params, "drop_pending_updates"):
            self.pending.clear()
        self.webhook = Webhook(deliveries=self.webhook.deliveries)
        self._notify()
        return True

    def webhook_info(self) -> dict[str, Any]:
        hook = self.webhook
        info: dict[str, Any] = {"url": hook.url, "has_custom_certificate": False,
                                "pending_update_count": len(self.pending)}
        if hook.url:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates:
                info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    async def _deliver(self) -> None:
        """Post pending updates one at a time, in order, while a webhook is set."""
        async with httpx.AsyncClient(timeout=10.0) as client:
            while self.webhook.url:
                self.pending = [u for u in self.pending if self._allowed(u, self.allowed)]
                if not self.pending:
                    await self._event().wait()
                    continue
                hook, update = self.webhook, self.pending[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
                record: dict[str, Any] = {"update_id": update["update_id"], "headers": headers}
                hook.deliveries.append(record)
                try:
                    response = await client.post(hook.url, json=update, headers=headers)
                    record["status"] = response.status_code
                    error = None if response.is_success else f"Wrong response from the webhook: " \
                        f"{response.status_code} {response.reason_phrase}"
                except httpx.HTTPError as exc:
                    error = record["error"] = f"Connection failed: {exc!r}"
                if error is None:
                    if self.pending and self.pending[0] is update:
                        self.pending.pop(0)
                    continue
                hook.last_error_date, hook.last_error_message = int(time.time()), error
                await asyncio.sleep(self.webhook_retry_s)

    async def close(self) -> None:
        self.webhook.url = ""
        self._notify()
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
            self._delivery = None
