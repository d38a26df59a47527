"""Anthropic Messages streaming with tools (anthropic 2.x, ``AsyncAnthropic``).

Followed docs.anthropic.com/en/api/messages-streaming: ``content_block_start`` opens a text or
``tool_use`` block (id, name), ``content_block_delta`` carries ``text_delta`` or ``input_json_delta``
(``partial_json`` fragments of the tool input), ``content_block_stop`` closes it, ``message_delta``
has the ``stop_reason``, ``message_stop`` ends the stream, ``ping`` keeps it alive and ``error`` reports a
failure mid-stream. Retries are ours, so the SDK's are off.
Usage: ``message_start`` carries the input tokens, ``message_delta`` the (cumulative) output tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import httpx2

from callserver.history import History
from callserver.llm import sse
from callserver.llm.base import HTTP_KEEPALIVE_S, Done, LLMError, LLMEvent, TextDelta, ToolCallEvent, Usage
from callserver.llm.openai import parse_arguments
from callserver.tools import ToolDef, to_anthropic


class EventReader:
    """One streamed message: each SSE event (name, ``data``) in, our events out.

    As the SDK's stream: ``ping`` and events without a name are skipped, an ``error`` event raises.
    Tool inputs are assembled per content block index from ``input_json_delta`` fragments and emitted
    when the block stops; ``message_stop`` yields the usage and ``Done``."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.blocks: dict[int, dict[str, str]] = {}
        self.stop = ""
        self.tokens_in = self.tokens_out = 0
        self.stopped = False

    def feed(self, name: str, data: str) -> list[LLMEvent]:
        if not name or name == "ping" or self.stopped:
            return []
        if name == "error":
            raise LLMError(f"anthropic: {data or 'an error event in the stream'}")
        try:
            event = json.loads(data)
        except json.JSONDecodeError as exc:
            raise LLMError(f"anthropic: a stream event is not JSON: {data[:80]!r}") from exc
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [TextDelta(delta["text"])] if delta.get("text") else []
            block = self.blocks.get(event.get("index", 0))
            if delta.get("type") == "input_json_delta" and block is not None:
                block["json"] += delta.get("partial_json") or ""
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.tokens_in = usage.get("input_tokens") or 0
            self.tokens_out = usage.get("output_tokens") or 0
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.blocks[event.get("index", 0)] = {"id": block.get("id", ""),
                                                      "name": block.get("name", ""), "json": ""}
        elif kind == "content_block_stop" and event.get("index", 0) in self.blocks:
            call = self.blocks.pop(event.get("index", 0))
            return [ToolCallEvent(call["id"], call["name"], parse_arguments(call["json"]))]
        elif kind == "message_delta":
            self.stop = (event.get("delta") or {}).get("stop_reason") or self.stop
            usage = event.get("usage") or {}
            self.tokens_out = usage.get("output_tokens") or self.tokens_out
            self.tokens_in = usage.get("input_tokens") or self.tokens_in
        elif kind == "message_stop":
            self.stopped = True
        return []

    def end(self) -> list[LLMEvent]:
        if not self.stopped:
            raise LLMError("anthropic: the stream ended without message_stop")
        return [Usage(self.provider, int(self.tokens_in), int(self.tokens_out)), Done(self.stop)]


class AnthropicLLM:
    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout_s: float = 30.0,
                 max_tokens: int = 400) -> None:
        self.model = model
        self.max_tokens = max_tokens
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100,
                               keepalive_expiry=HTTP_KEEPALIVE_S)
        # The SDK's aiohttp transport (`anthropic[aiohttp]`), as for OpenAI: less CPU per request.
        self.client = anthropic.AsyncAnthropic(api_key=api_key or "unset", base_url=base_url,
                                               max_retries=0, timeout=timeout_s,
                                               http_client=anthropic.DefaultAioHttpClient(limits=limits))
        _ = self.client.messages  # lazy SDK imports now, not in the first call's first turn

    async def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        # As for OpenAI (callserver.llm.openai): the SDK's generic `post` makes the request (auth headers,
        # anthropic-version, base URL, HTTP errors as anthropic.APIError) with the body as is, and the SSE
        # is parsed here instead of a pydantic model per event. Same JSON as `messages.create` (tested).
        system, messages = history.to_anthropic()
        body: dict[str, Any] = {"max_tokens": self.max_tokens, "messages": messages, "model": self.model,
                                "stream": True, "system": system}
        if tools:
            body["tools"] = to_anthropic(tools)
        try:
            response = await self.client.post("/v1/messages", body=body, cast_to=httpx2.Response, stream=True)
        except anthropic.APIError as exc:
            raise LLMError(f"anthropic: {exc}") from exc
        decoder, reader = sse.SseDecoder(), EventReader(self.name)
        try:
            # Read to the end of the body (it ends right after message_stop): a drained connection is reused.
            async for data in response.aiter_bytes():
                for event in decoder.feed(data):
                    for out in reader.feed(event.event, event.data):
                        yield out
        except (httpx2.HTTPError, httpx2.StreamError, anyio.EndOfStream) as exc:  # the body broke off
            raise LLMError(f"anthropic: the stream broke off: {exc!r}") from exc
        finally:
            await response.aclose()
        for out in reader.end():
            yield out

    async def close(self) -> None:
        await self.client.close()
