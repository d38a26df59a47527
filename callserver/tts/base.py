"""The interface every TTS provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class TTS(Protocol):
    name: str

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Raw mu-law 8 kHz audio (no header) for ``text``, chunk by chunk as the provider sends it."""
        ...

    async def close(self) -> None: ...
