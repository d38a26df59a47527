"""Signed webhook requests, as Twilio makes them.

Follows twilio.com/docs/usage/webhooks/webhooks-security: form-encoded POST (or GET with the parameters
in the query string), ``X-Twilio-Signature`` = base64 HMAC-SHA1 over the full URL followed by every
sorted parameter name and value, keyed with the account's auth token. The signature is computed with the
SDK's own ``RequestValidator.compute_signature`` so it matches what the product validates.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

USER_AGENT = "TwilioProxy/1.1"


@dataclass
class WebhookResult:
    status: int
    body: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300


def signed_request(auth_token: str, method: str, url: str, params: dict[str, str]) -> httpx.Request:
    validator = RequestValidator(auth_token)
    headers = {"User-Agent": USER_AGENT, "I-Twilio-Idempotency-Token": ""}
    if method.upper() == "GET":
        full = url + ("&" if "?" in url else "?") + urlencode(params)
        headers["X-Twilio-Signature"] = validator.compute_signature(full, {})
        return httpx.Request("GET", full, headers=headers)
    headers["X-Twilio-Signature"] = validator.compute_signature(url, params)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return httpx.Request("POST", url, headers=headers, content=urlencode(params).encode())


class WebhookSender:
    """Sends a call's webhooks; status callbacks go through one ordered queue per call."""

    def __init__(self, client: httpx.AsyncClient, log: list[dict]) -> None:
        self._client = client
        self._log = log

    async def send(self, auth_token: str, method: str, url: str, params: dict[str, str],
                   timeout_s: float = 15.0) -> WebhookResult:
        request = signed_request(auth_token, method, url, params)
        entry = {"url": url, "method": method.upper(), "params": params,
                 "signature": request.headers["X-Twilio-Signature"]}
        self._log.append(entry)
        try:
            request.extensions["timeout"] = {"connect": timeout_s, "read": timeout_s, "write": timeout_s,
                                             "pool": timeout_s}
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            entry["status"] = None
            return WebhookResult(0, "", f"{type(exc).__name__}: {exc}")
        entry["status"] = response.status_code
        return WebhookResult(response.status_code, response.text)


class OrderedCallbacks:
    """Posts callbacks one after another so the receiver sees them in event order."""

    def __init__(self, sender: WebhookSender, auth_token: str) -> None:
        self._sender = sender
        self._token = auth_token
        self._queue: asyncio.Queue[tuple[str, str, dict[str, str]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def post(self, method: str, url: str, params: dict[str, str]) -> None:
        self._queue.put_nowait((method, url, params))

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then stop."""
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        self._task.cancel()

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            method, url, params = item
            await self._sender.send(self._token, method, url, params)
