"""The LLM providers' own SSE parsing (raw streaming responses): events, chunks, tool calls, usage, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from callserver.history import History
from callserver.llm.anthropic import AnthropicLLM, EventReader
from callserver.llm.base import Done, LLMError, LLMEvent, TextDelta, ToolCallEvent, Usage
from callserver.llm.openai import ChunkReader, OpenAILLM
from callserver.llm.sse import SseDecoder, SseEvent
from callserver.tools import default_registry, to_anthropic, to_openai
from sim.llm_script import Reply, ToolCall

TOOLS = default_registry().defs


def _history() -> History:
    history = History("You call a dentist.")
    history.add_user("Hello, Smile Dental?")
    return history


async def _collect(events: AsyncIterator[LLMEvent]) -> list[LLMEvent]:
    return [e async for e in events]


def _headers(request: httpx2.Request) -> dict[str, str]:
    """A request's headers but the per-request idempotency key."""
    return {k.lower(): v for k, v in request.headers.items() if k.lower() != "idempotency-key"}


# --- SSE ------------------------------------------------------------------------------------------
BODY = (b"event: message_start\r\ndata: {\"a\": 1}\r\n\r\n"
        b": a comment\n\n"
        b"data: {\"b\":\ndata: 2}\n\n"
        b"data:nospace\n\n"
        b"data: [DONE]\n\n")
EVENTS = [SseEvent("message_start", '{"a": 1}'), SseEvent("", '{"b":\n2}'), SseEvent("", "nospace"),
          SseEvent("", "[DONE]")]


def test_sse_events_are_the_same_however_the_body_is_cut() -> None:
    for cut in range(len(BODY)):
        decoder = SseDecoder()
        assert decoder.feed(BODY[:cut]) + decoder.feed(BODY[cut:]) == EVENTS, cut
    decoder = SseDecoder()
    assert [e for i in range(len(BODY)) for e in decoder.feed(BODY[i:i + 1])] == EVENTS


def test_sse_event_waits_for_its_empty_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"x": 1}\n') == []
    assert decoder.feed(b"\n") == [SseEvent("", '{"x": 1}')]


# --- chat.completion.chunk -----------------------------------------------------------------------
def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": choices, "usage": None,
                       **extra})


def test_tool_call_deltas_split_across_chunks_are_assembled_by_index() -> None:
    reader = ChunkReader()
    fed: list[LLMEvent] = []
    for data in [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "One"}), _chunk({"content": " moment."}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "note_fact", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"label": "r'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "end_call", "arguments": "{"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ef", "value": "A-1"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}),
        _chunk({}, "tool_calls"),
        _chunk(usage={"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}),
        "[DONE]",
    ]:
        fed += reader.feed(data)
    assert fed == [TextDelta("One"), TextDelta(" moment.")]
    assert reader.end("openai") == [
        ToolCallEvent("call_a", "note_fact", {"label": "ref", "value": "A-1"}),
        ToolCallEvent("call_b", "end_call", {}),
        Usage("openai", 120, 9), Done("tool_calls")]


def test_an_error_chunk_mid_stream_raises_with_its_message() -> None:
    reader = ChunkReader()
    assert reader.feed(_chunk({"content": "Hel"})) == [TextDelta("Hel")]
    with pytest.raises(LLMError, match="openai: The server had an error"):
        reader.feed(json.dumps({"error": {"message": "The server had an error", "type": "server_error"}}))
    with pytest.raises(LLMError, match="An error occurred during streaming"):
        ChunkReader().feed(json.dumps({"error": {"code": 1}}))


def test_a_stream_without_finish_reason_is_an_error_and_nothing_after_done_counts() -> None:
    reader = ChunkReader()
    reader.feed(_chunk({"content": "Hi"}))
    with pytest.raises(LLMError, match="without a finish_reason"):
        reader.end("openai")
    reader.feed("[DONE]")
    assert reader.feed(_chunk({"content": "late"}, "stop")) == []
    with pytest.raises(LLMError, match="not JSON"):
        ChunkReader().feed("{broken")


# --- against the emulator, through the real SDK ----------------------------------------------------
async def test_usage_is_the_emulators_billed_tokens(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.brain.push(Reply("Sure, one moment.", [ToolCall("note_fact", {"label": "a", "value": "b"})]))
    events = await _collect(llm.stream(_history(), TOOLS))
    usage = [e for e in events if isinstance(e, Usage)]
    record = emu.requests[-1]
    assert usage == [Usage("openai", record.input_tokens, record.output_tokens)] and record.output_tokens > 3
    assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["note_fact"]
    assert isinstance(events[-1], Done) and events[-1].stop_reason == "tool_calls"
    assert emu.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_an_error_event_mid_stream_raises_after_the_words_before_it(
        openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.brain.push("Hello, I am calling about the appointment.")
    emu.error_after_tokens = 2
    received = ""
    with pytest.raises(LLMError, match="server had an error"):
        async for event in llm.stream(_history(), TOOLS):
            received += getattr(event, "text", "")
    assert received == "Hello,"


async def test_a_body_cut_off_mid_stream_raises(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.brain.push("Hello, I am calling about the appointment.")
    emu.drop_after_tokens = 3
    with pytest.raises(LLMError):
        await _collect(llm.stream(_history(), TOOLS))


async def test_http_errors_are_the_sdks_errors_wrapped(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.faults.http_status = 429
    with pytest.raises(LLMError) as caught:
        await _collect(llm.stream(_history(), TOOLS))
    assert isinstance(caught.value.__cause__, openai.RateLimitError)


async def test_closing_the_stream_early_cancels_generation(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.tokens_per_s = 20
    emu.brain.push("Hello, I am calling about the appointment you booked last week.")
    events = llm.stream(_history(), TOOLS)
    async for event in events:
        if isinstance(event, TextDelta):
            break
    await events.aclose()  # type: ignore[attr-defined]
    for _ in range(100):
        if emu.requests[-1].status != "pending":
            break
        await asyncio.sleep(0.01)
    assert emu.requests[-1].status == "cancelled"


async def test_request_headers_are_what_the_typed_create_sends() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(500, json={"error": {"message": "captured", "type": "server_error"}})

    llm = OpenAILLM(api_key="sk-test", base_url="http://127.0.0.1:9/v1", model="gpt-test")
    llm.client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(
                                        transport=httpx2.MockTransport(handler)))
    with pytest.raises(LLMError):
        await _collect(llm.stream(_history(), TOOLS))
    with pytest.raises(openai.APIError):
        await llm.client.chat.completions.create(
            model="gpt-test", messages=_history().to_openai(), tools=to_openai(TOOLS),  # type: ignore[arg-type]
            stream=True, max_completion_tokens=llm.max_tokens, stream_options={"include_usage": True})
    ours, typed = (_headers(r) for r in seen)
    assert ours == typed and ours["authorization"] == "Bearer sk-test"
    assert seen[0].url == seen[1].url and seen[0].method == seen[1].method == "POST"


# --- Anthropic ------------------------------------------------------------------------------------
def _feed_all(reader: EventReader, events_: list[tuple[str, dict[str, Any] | str]]) -> list[LLMEvent]:
    out: list[LLMEvent] = []
    for name, data in events_:
        out += reader.feed(name, data if isinstance(data, str) else json.dumps({"type": name, **data}))
    return out


def test_anthropic_tool_input_fragments_are_assembled_per_block_and_pings_skipped() -> None:
    reader = EventReader("anthropic")
    fed = _feed_all(reader, [
        ("message_start", {"message": {"usage": {"input_tokens": 80, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "One"}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                               "name": "note_fact", "input": {}}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"la'}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                       "partial_json": 'bel": "ref"}'}}),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ("message_stop", {}),
    ])
    assert fed == [TextDelta("One"), ToolCallEvent("toolu_1", "note_fact", {"label": "ref"})]
    assert reader.end() == [Usage("anthropic", 80, 12), Done("tool_use")]


def test_anthropic_error_event_raises_and_a_stream_without_message_stop_is_an_error() -> None:
    reader = EventReader("anthropic")
    _feed_all(reader, [("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}})])
    with pytest.raises(LLMError, match="without message_stop"):
        reader.end()
    with pytest.raises(LLMError, match="overloaded_error"):
        reader.feed("error", json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}}))


async def test_anthropic_error_event_mid_stream_after_the_words_before_it(
        anthropic_sim: tuple[Any, AnthropicLLM]) -> None:
    emu, llm = anthropic_sim
    emu.brain.push("Hello, I am calling about the appointment.")
    emu.error_after_tokens = 2
    received = ""
    with pytest.raises(LLMError):
        async for event in llm.stream(_history(), TOOLS):
            received += getattr(event, "text", "")
    assert received == "Hello,"


class _ClientPorts:
    """ASGI middleware noting each request's client address: one address, one reused connection."""

    def __init__(self, app: Any, seen: set[Any]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.add(tuple(scope["client"]))
        await self.app(scope, receive, send)


async def test_anthropic_usage_and_connection_reuse(anthropic_sim: tuple[Any, AnthropicLLM]) -> None:
    emu, llm = anthropic_sim
    clients: set[Any] = set()
    emu.app.middleware_stack = _ClientPorts(emu.app.middleware_stack, clients)  # built at start-up
    for _ in range(2):
        emu.brain.push(Reply("Sure.", [ToolCall("note_fact", {"label": "a", "value": "b"})]))
        events = await _collect(llm.stream(_history(), TOOLS))
        record = emu.requests[-1]
        assert [e for e in events if isinstance(e, Usage)] == [
            Usage("anthropic", record.input_tokens, record.output_tokens)]
        assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["note_fact"]
    assert len(clients) == 1  # the body was read to its end: the second turn reused the socket


async def test_anthropic_request_headers_are_what_messages_create_sends() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(500, json={"type": "error", "error": {"type": "api_error", "message": "x"}})

    llm = AnthropicLLM(api_key="sk-ant", base_url="http://127.0.0.1:9", model="claude-test")
    llm.client = anthropic.AsyncAnthropic(api_key="sk-ant", base_url="http://127.0.0.1:9", max_retries=0,
                                          http_client=anthropic.DefaultAsyncHttpxClient(
                                              transport=httpx2.MockTransport(handler)))
    with pytest.raises(LLMError):
        await _collect(llm.stream(_history(), TOOLS))
    system, messages = _history().to_anthropic()
    with pytest.raises(anthropic.APIError):
        await llm.client.messages.create(
            model="claude-test", system=system, messages=messages,  # type: ignore[arg-type]
            tools=to_anthropic(TOOLS), max_tokens=llm.max_tokens, stream=True)  # type: ignore[arg-type]
    ours, typed = (_headers(r) for r in seen)
    assert ours == typed and "sk-ant" in ours["authorization"] and "anthropic-version" in ours
    assert seen[0].url == seen[1].url
