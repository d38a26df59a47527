"""One loguru sink for the whole process; secrets redacted before anything is written.

Standard-library loggers (uvicorn, httpx, python-telegram-bot, twilio) are routed through loguru so
their lines get the same redaction: httpx logs request URLs, and a Telegram URL contains the bot token.
Call-related lines carry the call id: `logger.bind(call_id=...)`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from loguru import logger

from shared.policy import mask_secrets

_PATTERNS = [
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|token|basic)\s+)[^\s\"',]+"),
    re.compile(r"(?i)((?:xi-api-key|x-api-key|api[_-]?key|auth[_-]?token|password|secret)[\"']?\s*[:=]\s*[\"']?)"
               r"[^\s\"',&]+"),
    re.compile(r"(/bot)\d{5,}:[A-Za-z0-9_-]{20,}"),  # Telegram bot token inside a URL
    re.compile(r"()\b\d{6,}:[A-Za-z0-9_-]{30,}\b"),  # bare Telegram bot token
    re.compile(r"()\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI / Anthropic style keys
]
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces known secret values and secret-looking patterns in a log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(level: str = "INFO", secrets: Iterable[str] = (), sink: TextIO | None = None) -> Redactor:
    """Install the single sink; returns the redactor so tests can add secrets."""
    redactor = Redactor(secrets)

    def _patch(record: dict) -> None:  # type: ignore[type-arg]
        record["message"] = redactor(record["message"])
        if record["extra"].get("call_id", "-") != "-":
            # What a callee says or keys can be a code or a card number; only call lines can carry it.
            record["message"] = mask_secrets(record["message"])
        if record["exception"] is not None:
            record["extra"]["_redact"] = True
        record["extra"].setdefault("call_id", "-")

    def _format(record: dict) -> str:  # type: ignore[type-arg]
        call = record["extra"].get("call_id", "-")
        tag = f" call={call}" if call != "-" else ""
        return "{time:HH:mm:ss.SSS} {level: <7} {name}" + tag + " | {message}\n{exception}"

    logger.remove()
    logger.configure(patcher=_patch)  # type: ignore[arg-type]
    out = sink or sys.stderr

    def _write(message: str) -> None:
        out.write(redactor(str(message)))  # tracebacks too: they can quote locals and URLs

    logger.add(_write, level=level, format=_format, backtrace=False, diagnose=False, colorize=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    noisy_loggers = ("httpx", "httpcore", "httpx2", "websockets", "hpack", "aiosqlite", "apscheduler",
                     "alembic")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
