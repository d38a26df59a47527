"""Secrets said or keyed on a call never reach the transcript, the chat, the summary or the logs.

`shared.policy.mask_secrets` decides what is a secret in a sentence (digits next to a code's, PIN's or
password's name; card-shaped numbers passing Luhn). Keypad digits the other side presses are masked
one by one: a callee keys a PIN or a card number, never a sentence, so no context would tell them apart.
"""

from __future__ import annotations

from typing import Any

from shared.policy import mask_secrets

KEY_MASK = "•"


def masked(value: Any) -> Any:
    """`value` with every string inside it (dicts and lists too) passed through mask_secrets."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def action_detail(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    if kind == "dtmf_received" and "digit" in detail:
        detail = {**detail, "digit": KEY_MASK}
    return {k: masked(v) for k, v in detail.items()}
