"""Deepgram Aura TTS over the REST streaming endpoint (deepgram-sdk ``speak.v1.audio.generate``).

Followed developers.deepgram.com "Text to Speech REST" (/reference/text-to-speech/speak-request) and
"Media output settings": ``encoding=mulaw&sample_rate=8000&container=none`` returns raw headerless
mu-law, exactly what Twilio plays, streamed as it is generated. One request per phrase keeps barge-in
simple (cancel the request) and the HTTP connection is pooled, so there is no per-phrase handshake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment


class DeepgramTTS:
    name = "deepgram"

    def __init__(self, *, api_key: str, base_url: str, model: str = "aura-2-thalia-en") -> None:
        ws_url = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        env = DeepgramClientEnvironment(base=base_url, production=ws_url, agent=ws_url, agent_rest=base_url)
        self.client = AsyncDeepgramClient(api_key=api_key or "unset", environment=env)
        _ = self.client.speak.v1.audio  # lazy SDK imports now, not in the first call's first reply
        self.model = model

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        chunks = self.client.speak.v1.audio.generate(
            text=text, model=self.model, encoding="mulaw", sample_rate=8000, container="none")
        async for chunk in chunks:
            if chunk:
                yield chunk

    async def close(self) -> None:
        return None
