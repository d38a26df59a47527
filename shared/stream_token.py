"""Short-lived HMAC tokens that authenticate a Twilio media stream for one call.

Twilio forbids a query string on the `<Stream>` URL, and whether the WebSocket upgrade is signed is not
documented (see PROTOCOLS.md), so the voice webhook hands a token to Twilio in a `<Parameter>`; it comes
back in `start.customParameters` and the media endpoint checks it before touching the call.
Format: `<expiry unix seconds>.<base64url HMAC-SHA256(secret, "<call_id>.<expiry>")>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def _sign(secret: bytes, call_id: int, expiry: int) -> str:
    digest = hmac.new(secret, f"{call_id}.{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(secret: bytes | str, call_id: int, ttl_s: int, *, now: float | None = None) -> str:
    """A token valid for `call_id` during `ttl_s` seconds."""
    key = secret.encode() if isinstance(secret, str) else secret
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{expiry}.{_sign(key, call_id, expiry)}"


def verify(secret: bytes | str, token: str, call_id: int, *, now: float | None = None) -> bool:
    """True only for an unexpired token minted for this very call with this secret."""
    if not token or token.count(".") != 1:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    expiry_text, signature = token.split(".")
    if not expiry_text.isdigit():
        return False
    expiry = int(expiry_text)
    # Compare before checking expiry so timing does not tell a forger which part was wrong.
    valid = hmac.compare_digest(signature.encode(), _sign(key, call_id, expiry).encode())
    return valid and expiry >= (time.time() if now is None else now)
