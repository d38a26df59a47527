"""OpenAI Chat Completions streaming with tools (openai 3.x, ``AsyncOpenAI``).

Followed platform.openai.com/docs/api-reference/chat/create and .../chat/streaming: content arrives in
``choices[0].delta.content``; a tool call's first delta carries ``index``, ``id`` and ``function.name``,
later ones only ``function.arguments`` fragments for the same index; the last choice chunk has
``finish_reason`` ("tool_calls" or "stop"). Retries are ours (see ``resilient``), so the SDK's are off.
With ``stream_options.include_usage`` one more chunk, with empty ``choices``, carries the ``usage``
(prompt/completion tokens) that the cost guard counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import openai

from callserver.history import History
from callserver.llm import sse
from callserver.llm.base import HTTP_KEEPALIVE_S, Done, LLMError, LLMEvent, TextDelta, ToolCallEvent, Usage
from callserver.tools import ToolDef, to_openai


def parse_arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _options() -> Any:
    """The request options `chat.completions.create` passes: Bearer auth only (a fresh dict per request)."""
    return {"security": {"bearer_auth": True}}


def _error_message(error: Any) -> str:
    """What the SDK's stream reports for a chunk carrying ``error`` (openai._streaming.AsyncStream)."""
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "An error occurred during streaming"


class ChunkReader:
    """One streamed completion: each event's ``data`` (a chat.completion.chunk) in, our events out.

    Tool calls are assembled by ``index`` (the first delta has ``id`` and ``function.name``, later ones
    ``function.arguments`` fragments) and emitted at the end, with the usage chunk's token counts."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}
        self.finish = ""
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, data: str) -> list[LLMEvent]:
        if self.done:
            return []
        if data.startswith("[DONE]"):
            self.done = True
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise LLMError(f"openai: a stream chunk is not JSON: {data[:80]!r}") from exc
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):  # an error mid-stream, as the SDK's stream raises it
            raise LLMError(f"openai: {_error_message(chunk['error'])}")
        self.usage = chunk.get("usage") or self.usage
        choices = chunk.get("choices")
        if not choices:
            return []
        choice = choices[0]
        self.finish = choice.get("finish_reason") or self.finish
        delta = choice.get("delta") or {}
        for part in delta.get("tool_calls") or ():
            call = self.calls.setdefault(part.get("index", 0), {"id": "", "name": "", "args": ""})
            call["id"] = part.get("id") or call["id"]
            function = part.get("function") or {}
            call["name"] = function.get("name") or call["name"]
            call["args"] += function.get("arguments") or ""
        content = delta.get("content")
        return [TextDelta(content)] if content else []

    def end(self, provider: str) -> list[LLMEvent]:
        """After the body ended: the tool calls, the usage, ``Done``; LLMError if it was cut short."""
        out: list[LLMEvent] = [ToolCallEvent(call["id"], call["name"], parse_arguments(call["args"]))
                               for _, call in sorted(self.calls.items())]
        if not self.finish:
            raise LLMError("openai: the stream ended without a finish_reason")
        if self.usage is not None:
            out.append(Usage(provider, int(self.usage.get("prompt_tokens") or 0),
                             int(self.usage.get("completion_tokens") or 0)))
        out.append(Done(self.finish))
        return out


class OpenAILLM:
    name = "openai"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout_s: float = 30.0,
                 max_tokens: int = 400) -> None:
        self.model = model
        self.max_tokens = max_tokens
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100,
                               keepalive_expiry=HTTP_KEEPALIVE_S)
        # The SDK's aiohttp transport (the documented `openai[aiohttp]` client): its C HTTP parser and
        # plain asyncio sockets replace httpcore, h11 and anyio under the same httpx2 client, ~25% less
        # CPU per streamed request, less of it between our `post` and the bytes leaving.
        self.client = openai.AsyncOpenAI(api_key=api_key or "unset", base_url=base_url, max_retries=0,
                                         timeout=timeout_s,
                                         http_client=openai.DefaultAioHttpClient(limits=limits))
        _ = self.client.chat.completions  # lazy SDK imports (~60 ms) now, not in the first call's first turn

    async def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        # The SDK makes the request (auth, base URL, HTTP errors as openai.APIError) through its generic
        # `post`, the documented way to send a body as is: the typed `create` walks its ~40 parameters
        # through a TypedDict transform per turn, and its stream builds a pydantic chunk per token (4-5 ms
        # of CPU a reply, ~1.5 ms before the first token is out). Same JSON body as `create` would send
        # (tests/callserver/test_hot_path.py compares); the SSE lines are parsed here.
        body: dict[str, Any] = {"model": self.model, "stream": True, "messages": history.to_openai(),
                                "max_completion_tokens": self.max_tokens,
                                "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = to_openai(tools)
        try:
            response = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                              stream=True, options=_options())
        except openai.APIError as exc:
            raise LLMError(f"openai: {exc}") from exc
        decoder, chunks = sse.SseDecoder(), ChunkReader()
        try:
            async for data in response.aiter_bytes():
                for event in decoder.feed(data):
                    for out in chunks.feed(event.data):
                        yield out
        except (httpx2.HTTPError, httpx2.StreamError, anyio.EndOfStream) as exc:  # the body broke off
            raise LLMError(f"openai: the stream broke off: {exc!r}") from exc
        finally:
            await response.aclose()
        for out in chunks.end(self.name):
            yield out

    async def close(self) -> None:
        await self.client.close()
