"""Build the STT, LLM and TTS providers the settings ask for, each pointed at its base URL."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from callserver.llm.anthropic import AnthropicLLM
from callserver.llm.base import LLM
from callserver.llm.openai import OpenAILLM
from callserver.llm.resilient import ResilientLLM
from callserver.stt.base import SttStream
from callserver.stt.deepgram import DeepgramSTT
from callserver.tts.base import TTS
from callserver.tts.deepgram import DeepgramTTS
from callserver.tts.elevenlabs import ElevenLabsTTS
from shared.config import Settings


@dataclass
class Providers:
    stt: Callable[[], SttStream]
    """A new live STT stream per call."""
    llm: ResilientLLM
    tts: TTS

    async def close(self) -> None:
        await self.llm.close()
        await self.tts.close()


def build_llm(settings: Settings, provider: str) -> LLM:
    if provider == "anthropic":
        return AnthropicLLM(api_key=settings.anthropic_api_key.get_secret_value(),
                            base_url=settings.anthropic_base_url, model=settings.anthropic_model)
    return OpenAILLM(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
                     model=settings.openai_model)


def _preload_lazy_imports() -> None:
    """httpx's default transport (the Deepgram SDK's REST client, used for Deepgram TTS) imports anyio's
    asyncio backend on the first request, ~50 ms: done at start-up instead of inside the first call's first
    turn. The LLM and ElevenLabs clients send through aiohttp and no longer need it."""
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")


def build_providers(settings: Settings) -> Providers:
    _preload_lazy_imports()
    stt = DeepgramSTT(
        api_key=settings.deepgram_api_key.get_secret_value(), base_url=settings.deepgram_base_url,
        model=settings.deepgram_stt_model, language=settings.deepgram_language,
        endpointing_ms=settings.deepgram_endpointing_ms, utterance_end_ms=settings.deepgram_utterance_end_ms,
    )
    primary = build_llm(settings, settings.llm_provider)
    fallback_name = settings.llm_fallback_provider
    fallback = (build_llm(settings, fallback_name)
                if fallback_name not in ("none", settings.llm_provider) else None)
    llm = ResilientLLM(primary, fallback, timeout_s=settings.llm_timeout_s)
    tts: TTS
    if settings.tts_provider == "deepgram":
        tts = DeepgramTTS(api_key=settings.deepgram_api_key.get_secret_value(),
                          base_url=settings.deepgram_base_url, model=settings.deepgram_tts_model)
    else:
        tts = ElevenLabsTTS(api_key=settings.elevenlabs_api_key.get_secret_value(),
                            base_url=settings.elevenlabs_base_url, voice_id=settings.elevenlabs_voice_id,
                            model_id=settings.elevenlabs_model_id)
    return Providers(stt=stt.stream, llm=llm, tts=tts)
