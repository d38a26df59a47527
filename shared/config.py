"""Settings from the environment and `.env`, validated once, reported in one clear line when wrong.

Every outside service has a base URL setting so the whole product can point at the emulators in sim/.
Credentials are optional at load time; each command asks for the ones it needs with `require`, so a
command never demands a setting it does not use.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDERS = {"changeme", "change-me", "xxx", "your-key-here", "todo", "replace-me"}


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable and what it expects."""


def _split_list(value: Any) -> Any:
    """Accept `1,2,3` as well as a JSON list for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Where the call server listens and how Twilio reaches it.
    host: str = Field("127.0.0.1", description="interface the call server binds to, e.g. 0.0.0.0")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the call server (0-65535)")
    callserver_nice: int = Field(
        -5, ge=-20, le=19,
        description="CPU priority (nice, -20..19) the call server asks for; below 0 needs root or "
                    "CAP_SYS_NICE, else it keeps its own and logs why",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="public http(s) URL at which Twilio reaches the call server, e.g. https://x.ngrok.app",
    )

    # Twilio
    twilio_account_sid: str = Field("", description="Twilio account SID starting with AC")
    twilio_auth_token: SecretStr = Field(SecretStr(""), description="Twilio auth token")
    twilio_from_number: str = Field("", description="your Twilio number in E.164, e.g. +12125550100")
    twilio_api_base_url: str = Field("https://api.twilio.com", description="Twilio REST base URL")

    # Deepgram (speech-to-text, optional text-to-speech)
    deepgram_api_key: SecretStr = Field(SecretStr(""), description="Deepgram API key")
    deepgram_base_url: str = Field("https://api.deepgram.com", description="Deepgram base URL (http/https)")
    deepgram_stt_model: str = Field("nova-3", description="Deepgram streaming model")
    deepgram_language: str = Field("en-US", description="Deepgram language code")
    deepgram_endpointing_ms: int = Field(300, ge=10, le=5000, description="silence (ms) that ends a turn")
    deepgram_utterance_end_ms: int = Field(1000, ge=1000, le=5000, description="UtteranceEnd gap (ms)")
    deepgram_tts_model: str = Field("aura-2-thalia-en", description="Deepgram Aura voice model")

    # LLMs
    llm_provider: Literal["openai", "anthropic"] = Field("openai", description="'openai' or 'anthropic'")
    llm_fallback_provider: Literal["openai", "anthropic", "none"] = Field(
        "none", description="provider used when the main one fails twice: 'openai', 'anthropic' or 'none'"
    )
    llm_timeout_s: float = Field(8.0, gt=0, description="seconds to wait for the first token")
    openai_api_key: SecretStr = Field(SecretStr(""), description="OpenAI API key")
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI base URL incl. /v1")
    openai_model: str = Field("gpt-4.1-mini", description="OpenAI chat model")
    anthropic_api_key: SecretStr = Field(SecretStr(""), description="Anthropic API key")
    anthropic_base_url: str = Field("https://api.anthropic.com", description="Anthropic base URL")
    anthropic_model: str = Field("claude-haiku-4-5", description="Anthropic model")

    # Text-to-speech
    tts_provider: Literal["elevenlabs", "deepgram"] = Field(
        "elevenlabs", description="'elevenlabs' or 'deepgram'"
    )
    elevenlabs_api_key: SecretStr = Field(SecretStr(""), description="ElevenLabs API key")
    elevenlabs_base_url: str = Field("https://api.elevenlabs.io", description="ElevenLabs base URL")
    elevenlabs_voice_id: str = Field("21m00Tcm4TlvDq8ikWAM", description="ElevenLabs voice id")
    elevenlabs_model_id: str = Field("eleven_flash_v2_5", description="ElevenLabs model id")

    # Telegram
    telegram_bot_token: SecretStr = Field(SecretStr(""), description="bot token from @BotFather")
    telegram_api_base_url: str = Field("https://api.telegram.org", description="Telegram Bot API base URL")
    telegram_allowed_users: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="comma-separated Telegram user ids (or a JSON list), e.g. 123,456"
    )
    telegram_webhook_url: str = Field(
        "", description="public URL for Telegram webhook mode; empty = long polling"
    )
    telegram_webhook_secret: SecretStr = Field(SecretStr(""), description="secret token for webhook mode")

    # The agent
    agent_name: str = Field("Alex", description="name the agent gives on the phone")
    inbound_greeting: str = Field(
        "Hello, you've reached the assistant of the owner of this number. How can I help?",
        description="first line the agent says on an inbound call",
    )
    voicemail_message: str = Field("", description="message left on voicemail; empty = derived from task")
    dtmf_mode: Literal["inband", "rest"] = Field(
        "inband", description="how digits are sent: 'inband' tones in the audio or 'rest' TwiML <Play>"
    )
    confirm_before_call: bool = Field(True, description="show [Call] [Edit] [Cancel] before dialing")
    ask_owner_timeout_s: float = Field(
        90.0, gt=0, le=600, description="how long the agent waits for the owner's answer to ask_owner (s)"
    )
    ask_owner_keepalive_s: float = Field(
        20.0, gt=0, le=120, description="while waiting for the owner, 'still checking' every N seconds"
    )
    bridge_ring_timeout_s: int = Field(
        25, ge=5, le=120, description="hold for me: how long the owner's phone rings before the agent "
        "carries on itself (s)"
    )

    # Limits
    max_call_minutes: int = Field(30, ge=1, le=240, description="hard limit of one call (minutes)")
    max_hold_minutes: int = Field(45, ge=1, le=240, description="longest time on hold (minutes)")
    max_concurrent_calls: int = Field(5, ge=1, le=1000, description="live calls at once, all users")
    allowed_country_codes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["US", "CA"],
        description="comma-separated ISO regions that may be called, e.g. US,CA,GB",
    )
    recording_enabled: bool = Field(False, description="record calls (dual channel): true/false")
    max_call_cost: float = Field(1.0, ge=0, description="most one call may cost in USD; 0 = no limit")
    limit_wrap_up_share: float = Field(
        0.8, gt=0, lt=1, description="share of a per-call limit at which the agent is told to wrap up"
    )
    daily_max_calls: int = Field(50, ge=0, description="calls one user may place per day; 0 = no limit")
    daily_max_minutes: int = Field(
        120, ge=0, description="call minutes one user may use per day; 0 = no limit"
    )
    daily_max_cost: float = Field(10.0, ge=0, description="USD one user may spend per day; 0 = no limit")
    cost_report_s: float = Field(
        5.0, gt=0, description="how often a live call's running cost is published (s)"
    )

    # Provider list prices in USD, used for the cost guard; set your contract prices here.
    price_twilio_per_min: float = Field(0.014, ge=0, description="Twilio outbound voice, per started minute")
    price_deepgram_stt_per_min: float = Field(
        0.0077, ge=0, description="Deepgram streaming STT, per audio minute"
    )
    price_deepgram_tts_per_1k_chars: float = Field(
        0.03, ge=0, description="Deepgram Aura TTS, per 1000 characters"
    )
    price_elevenlabs_per_1k_chars: float = Field(
        0.05, ge=0, description="ElevenLabs TTS, per 1000 characters"
    )
    price_openai_input_per_mtok: float = Field(
        0.40, ge=0, description="OpenAI model input, per million tokens"
    )
    price_openai_output_per_mtok: float = Field(
        1.60, ge=0, description="OpenAI model output, per million tokens"
    )
    price_anthropic_input_per_mtok: float = Field(
        1.00, ge=0, description="Anthropic model input, per million tokens"
    )
    price_anthropic_output_per_mtok: float = Field(
        5.00, ge=0, description="Anthropic model output, per million tokens"
    )

    # Storage and bus
    database_url: str = Field(
        "sqlite:///./data/dialer.db", description="sqlite:///path or postgresql://user@host/db"
    )
    redis_url: str = Field("", description="redis://host:6379/0 for the scale-out bus; empty = in-process")
    stream_token_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key for media-stream tokens; empty = derived from the Twilio token"
    )
    stream_token_ttl_s: int = Field(120, ge=10, le=3600, description="lifetime of a media-stream token (s)")

    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="TRACE, DEBUG, INFO, WARNING or ERROR"
    )

    @field_validator("telegram_allowed_users", "allowed_country_codes", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_country_codes")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        out = [v.upper() for v in value]
        for region in out:
            if len(region) != 2 or not region.isalpha():
                raise ValueError(f"{region!r} is not a two-letter region code")
        return out

    @field_validator("public_base_url", "twilio_api_base_url", "deepgram_base_url", "openai_base_url",
                     "anthropic_base_url", "elevenlabs_base_url", "telegram_api_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must be sqlite:///path or postgresql://...")
        return value

    @field_validator("twilio_from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        if value and not (value.startswith("+") and value[1:].isdigit()):
            raise ValueError("must be in E.164 form, e.g. +12125550100")
        return value

    # --- derived values -------------------------------------------------------------------

    @property
    def media_ws_url(self) -> str:
        base = self.public_base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/twilio/media"

    @property
    def deepgram_ws_url(self) -> str:
        return self.deepgram_base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)

    @property
    def token_secret(self) -> bytes:
        secret = self.stream_token_secret.get_secret_value() or (
            "stream:" + self.twilio_auth_token.get_secret_value()
        )
        return secret.encode()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secrets(self) -> list[str]:
        """Every secret value set, for log redaction."""
        values = [getattr(self, name) for name, field in type(self).model_fields.items()
                  if field.annotation is SecretStr]
        return [v.get_secret_value() for v in values if v.get_secret_value()]

    def require(self, *names: str) -> None:
        """Raise SettingsError naming the first of `names` (env var names) that is unset or a placeholder."""
        for env_name in names:
            field_name = env_name.lower()
            value = getattr(self, field_name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not raw:
                what = type(self).model_fields[field_name].description
                raise SettingsError(f"{env_name} is not set: expected {what}.")
            if isinstance(raw, str) and raw.strip().lower() in PLACEHOLDERS:
                raise SettingsError(f"{env_name} still holds the placeholder {raw!r}: set the real value.")


def explain(error: ValidationError) -> str:
    """One line per bad variable: its name, what it expects and what it got."""
    lines = []
    for item in error.errors():
        field_name = str(item["loc"][0]) if item["loc"] else "?"
        field = Settings.model_fields.get(field_name)
        expects = field.description if field is not None else ""
        got = item.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {str(got)[:60]!r})"
        reason = item["msg"].removeprefix("Value error, ")
        lines.append(f"Invalid setting {field_name.upper()}: {reason}; expected {expects}{got_text}.")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env/.env plus overrides; raise SettingsError with a clear message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"Invalid setting: a list value is not valid JSON ({exc.msg}).") from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests replace them with `get_settings.cache_clear()` + env."""
    return load_settings()
