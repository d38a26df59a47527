"""What an LLM stream yields, provider-neutral, and the interface each provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from callserver.history import History
from callserver.tools import ToolDef

HTTP_KEEPALIVE_S = 50.0
"""How long an idle pooled connection to a provider is kept. httpx's default (5 s) is shorter than the
pause between two turns of a call, so each reply paid a new connection (a TCP - and with a real
provider TLS - handshake) on its critical path; load balancers in front of the APIs keep idle
connections for 60 s or more."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A complete tool call (providers stream argument fragments; this is emitted once assembled)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Done:
    stop_reason: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider billed for this response (from its usage field), sent just before Done."""

    provider: str
    input_tokens: int
    output_tokens: int


LLMEvent = TextDelta | ToolCallEvent | Done | Usage


class LLMError(Exception):
    """The provider failed (network, HTTP error, bad stream); retrying may help."""


class LLM(Protocol):
    name: str

    def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        """Stream one reply; raises LLMError (or the SDK's errors) on failure."""
        ...

    async def close(self) -> None: ...
