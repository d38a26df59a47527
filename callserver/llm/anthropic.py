"""Anthropic Messages streaming with tools (anthropic 2.x, ``AsyncAnthropic``).

Followed docs.anthropic.com/en/api/messages-streaming: ``content_block_start`` opens a text or
``tool_use`` block (id, name), ``content_block_delta`` carries ``text_delta`` or ``input_json_delta``
(``partial_json`` fragments of the tool input), ``content_block_stop`` closes it, ``message_delta``
has the ``stop_reason``, ``message_stop`` ends the stream. Retries are ours, so the SDK's are off.
Usage: ``message_start`` carries the input tokens, ``message_delta`` the (cumulative) output tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from callserver.history import History
from callserver.llm.base import HTTP_KEEPALIVE_S, Done, LLMError, LLMEvent, TextDelta, ToolCallEvent, Usage
from callserver.llm.openai import parse_arguments
from callserver.tools import ToolDef, to_anthropic


class AnthropicLLM:
    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout_s: float = 30.0,
                 max_tokens: int = 400) -> None:
        self.model = model
        self.max_tokens = max_tokens
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100,
                               keepalive_expiry=HTTP_KEEPALIVE_S)
        self.client = anthropic.AsyncAnthropic(api_key=api_key or "unset", base_url=base_url,
                                               max_retries=0, timeout=timeout_s,
                                               http_client=anthropic.DefaultAsyncHttpxClient(limits=limits))
        _ = self.client.messages  # lazy SDK imports now, not in the first call's first turn

    async def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        system, messages = history.to_anthropic()
        # Wire format already: `extra_body` skips the SDK's per-message TypedDict transform on the critical
        # path of every turn (see callserver.llm.openai).
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = to_anthropic(tools)
        blocks: dict[int, dict[str, str]] = {}
        stop = ""
        tokens_in = tokens_out = 0
        try:
            stream = await self.client.messages.create(
                model=self.model, system=system, messages=[], extra_body=body,
                max_tokens=self.max_tokens, stream=True)
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        tokens_in = event.message.usage.input_tokens or 0
                        tokens_out = event.message.usage.output_tokens or 0
                    elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                        block = event.content_block
                        blocks[event.index] = {"id": block.id, "name": block.name, "json": ""}
                    elif event.type == "content_block_delta":
                        if event.delta.type == "text_delta":
                            yield TextDelta(event.delta.text)
                        elif event.delta.type == "input_json_delta" and event.index in blocks:
                            blocks[event.index]["json"] += event.delta.partial_json
                    elif event.type == "content_block_stop" and event.index in blocks:
                        call = blocks.pop(event.index)
                        yield ToolCallEvent(call["id"], call["name"], parse_arguments(call["json"]))
                    elif event.type == "message_delta":
                        stop = event.delta.stop_reason or stop
                        tokens_out = event.usage.output_tokens or tokens_out
                        tokens_in = getattr(event.usage, "input_tokens", None) or tokens_in
                    elif event.type == "message_stop":
                        yield Usage(self.name, tokens_in, tokens_out)
                        yield Done(stop)
                        return
        except anthropic.APIError as exc:
            raise LLMError(f"anthropic: {exc}") from exc
        raise LLMError("anthropic: the stream ended without message_stop")

    async def close(self) -> None:
        await self.client.close()
