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

import httpx2
import openai

from callserver.history import History
from callserver.llm.base import HTTP_KEEPALIVE_S, Done, LLMError, LLMEvent, TextDelta, ToolCallEvent, Usage
from callserver.tools import ToolDef, to_openai


def parse_arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class OpenAILLM:
    name = "openai"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout_s: float = 30.0,
                 max_tokens: int = 400) -> None:
        self.model = model
        self.max_tokens = max_tokens
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100,
                               keepalive_expiry=HTTP_KEEPALIVE_S)
        self.client = openai.AsyncOpenAI(api_key=api_key or "unset", base_url=base_url, max_retries=0,
                                         timeout=timeout_s,
                                         http_client=openai.DefaultAsyncHttpxClient(limits=limits))
        _ = self.client.chat.completions  # lazy SDK imports (~60 ms) now, not in the first call's first turn

    async def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        # Messages and tools are built in the wire format already. As typed arguments the SDK would walk
        # them through its TypedDict transform, ~150 us per message (2 ms at 14 messages, growing with the
        # call) on the critical path of every turn; `extra_body` goes out as is. Same JSON either way
        # (tests/callserver/test_hot_path.py compares).
        body: dict[str, Any] = {"messages": history.to_openai()}
        if tools:
            body["tools"] = to_openai(tools)
        calls: dict[int, dict[str, str]] = {}
        finish = ""
        usage = None
        try:
            stream = await self.client.chat.completions.create(
                model=self.model, messages=[], extra_body=body, stream=True,
                max_completion_tokens=self.max_tokens, stream_options={"include_usage": True})
            async with stream:
                async for chunk in stream:
                    usage = chunk.usage or usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    delta = choice.delta
                    if delta.content:
                        yield TextDelta(delta.content)
                    for part in delta.tool_calls or []:
                        call = calls.setdefault(part.index, {"id": "", "name": "", "args": ""})
                        call["id"] = part.id or call["id"]
                        if part.function is not None:
                            call["name"] = part.function.name or call["name"]
                            call["args"] += part.function.arguments or ""
                    finish = choice.finish_reason or finish
        except openai.APIError as exc:
            raise LLMError(f"openai: {exc}") from exc
        for _, call in sorted(calls.items()):
            yield ToolCallEvent(call["id"], call["name"], parse_arguments(call["args"]))
        if not finish:
            raise LLMError("openai: the stream ended without a finish_reason")
        if usage is not None:
            yield Usage(self.name, usage.prompt_tokens, usage.completion_tokens)
        yield Done(finish)

    async def close(self) -> None:
        await self.client.close()
