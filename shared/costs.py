"""What a call costs: units counted on our side times the per-unit prices in settings.

Units are what each provider bills: Twilio per *started* minute of call duration (twilio.com/voice/pricing;
the `Duration` status-callback field is the billed minutes), Deepgram streaming STT per second of audio
sent (shown per minute), LLM input and output tokens from each response's usage field, TTS characters
sent. The breakdown is stored as JSON on `Call.cost`, so it is plain data: units, cost per item, total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings

CURRENCY = "USD"


@dataclass
class Units:
    """Billable units of one call (or of several calls, summed)."""

    twilio_seconds: float = 0.0
    stt_seconds: float = 0.0
    llm_tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    """{provider: {"input": n, "output": n}}: a fallback provider is billed at its own prices."""
    tts_characters: dict[str, int] = field(default_factory=dict)
    """{provider: characters}."""

    def add_llm(self, provider: str, input_tokens: int, output_tokens: int) -> None:
        tokens = self.llm_tokens.setdefault(provider, {"input": 0, "output": 0})
        tokens["input"] += int(input_tokens)
        tokens["output"] += int(output_tokens)

    def add_tts(self, provider: str, characters: int) -> None:
        self.tts_characters[provider] = self.tts_characters.get(provider, 0) + int(characters)

    @property
    def twilio_minutes(self) -> int:
        """Minutes as Twilio bills them: every started minute counts whole."""
        return math.ceil(self.twilio_seconds / 60) if self.twilio_seconds > 0 else 0


def _llm_prices(settings: Settings, provider: str) -> tuple[float, float]:
    if provider == "anthropic":
        return settings.price_anthropic_input_per_mtok, settings.price_anthropic_output_per_mtok
    return settings.price_openai_input_per_mtok, settings.price_openai_output_per_mtok


def _tts_price(settings: Settings, provider: str) -> float:
    if provider == "deepgram":
        return settings.price_deepgram_tts_per_1k_chars
    return settings.price_elevenlabs_per_1k_chars


def breakdown(units: Units, settings: Settings) -> dict[str, Any]:
    """{"units": ..., "items": {name: usd}, "total": usd, "currency": "USD"}, items unrounded-sum = total."""
    items: dict[str, float] = {
        "twilio": units.twilio_minutes * settings.price_twilio_per_min,
        "stt": units.stt_seconds / 60 * settings.price_deepgram_stt_per_min,
    }
    for provider, tokens in sorted(units.llm_tokens.items()):
        price_in, price_out = _llm_prices(settings, provider)
        items[f"llm_{provider}"] = (tokens["input"] * price_in + tokens["output"] * price_out) / 1_000_000
    for provider, chars in sorted(units.tts_characters.items()):
        items[f"tts_{provider}"] = chars / 1000 * _tts_price(settings, provider)
    total = sum(items.values())
    return {
        "units": {
            "twilio_seconds": round(units.twilio_seconds, 3), "twilio_minutes": units.twilio_minutes,
            "stt_seconds": round(units.stt_seconds, 3),
            "llm_tokens": {p: dict(t) for p, t in units.llm_tokens.items()},
            "tts_characters": dict(units.tts_characters),
        },
        "items": {name: round(value, 6) for name, value in items.items()},
        "total": round(total, 6),
        "currency": CURRENCY,
    }


def total_of(units: Units, settings: Settings) -> float:
    return float(breakdown(units, settings)["total"])


def money(usd: float) -> str:
    """$0.0123 for small sums (a call often costs cents), $1.23 above a dollar."""
    if usd >= 1:
        return f"${usd:.2f}"
    return f"${usd:.4f}" if usd > 0 else "$0.00"


def describe(cost: dict[str, Any]) -> str:
    """One line for the summary: "Cost $0.0311 (phone $0.014, speech-to-text $0.0013, ...)"."""
    if not cost or "total" not in cost:
        return ""
    names = {"twilio": "phone", "stt": "speech-to-text"}
    parts = []
    for item, usd in cost.get("items", {}).items():
        if usd <= 0:
            continue
        label = names.get(item) or (f"LLM {item[4:]}" if item.startswith("llm_") else f"voice {item[4:]}")
        parts.append(f"{label} {money(usd)}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"Cost {money(float(cost['total']))}{detail}"
