"""ElevenLabs TTS over HTTP streaming through the SDK (``AsyncElevenLabs.text_to_speech.stream``).

Followed elevenlabs.io/docs/api-reference/text-to-speech/stream: ``POST /v1/text-to-speech/{voice_id}/
stream?output_format=ulaw_8000`` with ``xi-api-key``; the body streams raw mu-law 8 kHz as it is
generated. The SDK's WebSocket helper is synchronous and always ``wss://``, so HTTP streaming per phrase
it is: the SDK pools the connection and a barge-in simply cancels the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from elevenlabs.client import AsyncElevenLabs

from callserver.aiohttp_transport import AiohttpTransport
from callserver.http_release import EVENT_HOOKS
from callserver.llm.base import HTTP_KEEPALIVE_S

AS_RECEIVED: Any = {"chunk_size": None}
"""Request options: audio as it arrives. The SDK re-chunks the body into 1024-byte pieces by default,
holding back a first network read under 1024 bytes (128 ms of audio) until more audio has come."""


class ElevenLabsTTS:
    name = "elevenlabs"

    def __init__(self, *, api_key: str, base_url: str, voice_id: str, model_id: str = "eleven_flash_v2_5",
                 timeout_s: float = 20.0) -> None:
        # As many connections as the LLM client: with the next phrase fetched ahead, a call can have two TTS
        # requests open, and httpx's default cap (100) would queue them past 50 calls.
        transport = AiohttpTransport(limits=httpx.Limits(max_connections=1000,
                                                         keepalive_expiry=HTTP_KEEPALIVE_S))
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=True, transport=transport,
                                       event_hooks=EVENT_HOOKS)
        self.client = AsyncElevenLabs(api_key=api_key or "unset", base_url=base_url, timeout=timeout_s,
                                      httpx_client=self._http)
        _ = self.client.text_to_speech  # lazy SDK imports now, not in the first call's first reply
        self.voice_id = voice_id
        self.model_id = model_id

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        chunks = self.client.text_to_speech.stream(
            self.voice_id, text=text, model_id=self.model_id, output_format="ulaw_8000",
            request_options=AS_RECEIVED)
        async for chunk in chunks:
            if chunk:
                yield chunk

    async def close(self) -> None:
        await self._http.aclose()
