"""A secret never reaches the log output, whichever way it is logged."""

from __future__ import annotations

import io
import logging

from loguru import logger

from shared.logs import setup_logging

KEY = "sk-test-0123456789abcdefghijklmnop"
BOT_TOKEN = "123456789:AAHfakeFAKEfakeFAKEfakeFAKEfake12345"


def test_secrets_are_redacted_everywhere() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", secrets=[KEY, "twilio-auth-token-xyz"], sink=out)
    logger.info("calling openai with key {}", KEY)
    logger.bind(call_id=7).info("auth header Authorization: Bearer {}", "abcdef123456")
    logging.getLogger("httpx").warning("POST https://api.telegram.org/bot%s/sendMessage", BOT_TOKEN)
    logging.getLogger("twilio").error("auth_token=twilio-auth-token-xyz rejected")
    try:
        raise RuntimeError(f"boom with {KEY}")
    except RuntimeError:
        logger.exception("failed")
    text = out.getvalue()
    assert KEY not in text
    assert "abcdef123456" not in text
    assert BOT_TOKEN.split(":")[1] not in text
    assert "twilio-auth-token-xyz" not in text
    assert text.count("[REDACTED]") >= 5
    assert "call=7" in text  # the call id is bound into call-related lines
