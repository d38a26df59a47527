"""Bot API wire format for the Telegram emulator: reading requests, writing answers, flood control.

Followed: core.telegram.org/bots/api#making-requests (GET/POST, query string, urlencoded, JSON or
multipart bodies; ``{"ok": true, "result": ...}`` and ``{"ok": false, "error_code", "description",
"parameters": {"retry_after"}}``; method names are case-insensitive), #responseparameters, and
core.telegram.org/bots/faq ("My bot is hitting limits, how do I avoid this?": about one message per
second per chat with short bursts allowed, no more than 20 messages per minute in a group, about 30
messages per second overall; 429 "Too Many Requests: retry after N" when exceeded).

Multipart bodies are parsed here rather than with python-multipart so the emulator needs nothing
beyond starlette; uploads are kept byte-exact.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

# Parameters whose form-encoded value is a JSON document (PTB json-dumps every non-str value).
JSON_FIELDS = frozenset({
    "reply_markup", "reply_parameters", "entities", "caption_entities", "commands", "scope",
    "allowed_updates", "link_preview_options", "media", "results", "message_ids",
})


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.code)


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


_PARAM_RE = re.compile(r';\s*([\w*]+)="((?:[^"\\]|\\.)*)"')


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("multipart boundary is missing")
    delimiter = b"--" + match.group(1).encode()
    params: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = dict(_PARAM_RE.findall(";" + headers.get("content-disposition", "")))
        name = disposition.get("name", "")
        if "filename" in disposition:
            filename = disposition["filename"].replace("%22", '"')
            uploads[name] = Upload(name, filename, headers.get("content-type", "application/octet-stream"),
                                   content)
        else:
            params[name] = content.decode("utf-8", "replace")
    return params, uploads


async def read_params(request: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """All parameters of a Bot API call (query string and body), plus uploaded files."""
    params: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if body and content_type.startswith("application/json"):
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise bad_request("can't parse JSON request body") from exc
        params.update(decoded if isinstance(decoded, dict) else {})
    elif body and content_type.startswith("multipart/form-data"):
        fields, uploads = _parse_multipart(body, content_type)
        params.update(fields)
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    for name in JSON_FIELDS & params.keys():
        if isinstance(params[name], str):
            try:
                params[name] = json.loads(params[name])
            except ValueError as exc:
                raise bad_request(f"can't parse {name} JSON object") from exc
    return params, uploads


def int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid {name} specified") from exc


def bool_param(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def utf16_len(text: str) -> int:
    """Entity offsets and lengths are counted in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class FloodLimits:
    """Flood limits; the defaults follow the Bot FAQ. ``enabled=False`` turns enforcement off."""

    enabled: bool = True
    chat_per_second: float = 1.0
    """Sustained messages per second in one chat (sends and edits)."""
    chat_burst: int = 3
    """Messages one chat may take at once before the per-second rate applies."""
    group_per_minute: int = 20
    """Messages per minute in one group or supergroup (negative chat id)."""
    global_per_second: float = 30.0
    """Messages per second across all chats."""

    @classmethod
    def relaxed(cls) -> FloodLimits:
        return cls(enabled=False)


@dataclass
class _Bucket:
    capacity: float
    rate: float
    tokens: float
    at: float

    def wait(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass
class FloodControl:
    """Token buckets per chat, per group and overall; counts the 429s it served."""

    limits: FloodLimits = field(default_factory=FloodLimits)
    rejected: int = 0
    _buckets: dict[Any, _Bucket] = field(default_factory=dict)

    def _bucket(self, key: Any, capacity: float, rate: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != capacity or bucket.rate != rate:
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        return bucket

    def check(self, chat_id: int) -> None:
        """Take one message slot for ``chat_id`` or raise the 429 Telegram would answer."""
        limits = self.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        buckets = [
            self._bucket("all", limits.global_per_second, limits.global_per_second, now),
            self._bucket(("chat", chat_id), limits.chat_burst, limits.chat_per_second, now),
        ]
        if chat_id < 0:
            buckets.append(self._bucket(("group", chat_id), limits.group_per_minute,
                                        limits.group_per_minute / 60.0, now))
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            self.rejected += 1
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        for bucket in buckets:
            bucket.tokens -= 1.0

    def reset(self) -> None:
        self._buckets.clear()
        self.rejected = 0
