"""The Anthropic emulator driven by the real anthropic SDK (AsyncAnthropic against sim.anthropic)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from sim.anthropic import AnthropicEmulator, create_anthropic_app
from sim.llm_script import ReplyQueue, Rule, ScriptedBrain, ToolCall
from sim.server import serve

KEY = "sk-ant-test-key"
MODEL = "claude-sonnet-4-5"
TOOLS: list[Any] = [
    {"name": "note_fact", "description": "Record a fact",
     "input_schema": {"type": "object", "properties": {"value": {"type": "string"}}}},
    {"name": "end_call", "description": "Hang up", "input_schema": {"type": "object", "properties": {}}},
]
BRAIN = ScriptedBrain([
    Rule(first_turn=True, say="Hi, I'm calling for Alex about a prescription.", once=True),
    Rule(user=r"reference (?:number )?is (?P<ref>[A-Z]+-\d+)", say="One moment.",
         calls=[ToolCall("note_fact", {"label": "reference number", "value": "{ref}"})]),
    Rule(after_tool="note_fact", tool_result="ok", say="Great, thank you. Goodbye!",
         calls=[ToolCall("end_call", {"reason": "done"})]),
])


@pytest.fixture
async def sim() -> AsyncIterator[tuple[AnthropicEmulator, anthropic.AsyncAnthropic, str]]:
    emu = create_anthropic_app(BRAIN, ttft_s=0.05, tokens_per_s=400, api_key=KEY)
    async with serve(emu.app) as url:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
        yield emu, client, url
        await client.close()


async def test_text_stream_honours_ttft_and_token_rate() -> None:
    text = "Hi, I'm calling on behalf of Alex to ask whether the prescription is ready for pickup."
    emu = create_anthropic_app(ReplyQueue([text]), ttft_s=0.3, tokens_per_s=50, api_key=KEY)
    async with serve(emu.app) as url:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
        start = time.perf_counter()
        arrivals: list[float] = []
        deltas: list[str] = []
        async with client.messages.stream(model=MODEL, max_tokens=200,
                                          messages=[{"role": "user", "content": "hi"}]) as stream:
            async for delta in stream.text_stream:
                arrivals.append(time.perf_counter() - start)
                deltas.append(delta)
            final = await stream.get_final_message()
    assert "".join(deltas) == text == final.content[0].text  # type: ignore[union-attr]
    expected_end = 0.3 + (len(deltas) - 1) / 50
    assert 0.28 <= arrivals[0] < 0.45
    assert expected_end - 0.03 <= arrivals[-1] < expected_end + 0.2
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == len(deltas)
    assert final.usage.input_tokens == emu.requests[0].input_tokens > 0


async def test_raw_event_sequence_for_a_tool_call(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    stream = await client.messages.create(
        model=MODEL, max_tokens=200, tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."},
                  {"role": "user", "content": "Your reference number is RX-4410."}])
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    starts = [e for e in events if e.type == "content_block_start"]
    assert starts[0].content_block.type == "text"
    tool = starts[1].content_block
    assert tool.type == "tool_use" and tool.name == "note_fact" and tool.input == {}
    assert tool.id.startswith("toolu_") and starts[1].index == 1
    partial = [e.delta.partial_json for e in events
               if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert partial[0] == "" and len(partial) > 4
    assert json.loads("".join(partial)) == {"label": "reference number", "value": "RX-4410"}
    assert kinds.count("content_block_stop") == 2
    assert events[-2].delta.stop_reason == "tool_use"
    assert emu.requests[0].reply.tool_calls[0].id == tool.id


async def test_multi_turn_with_tool_results_and_request_log(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    system = [{"type": "text", "text": "You call a pharmacy."}, {"type": "text", "text": "Be brief."}]
    messages: list[Any] = [{"role": "user", "content": "Pharmacy, how can I help?"}]
    first = await client.messages.create(model=MODEL, max_tokens=200, system=system, messages=messages)
    assert first.content[0].text == "Hi, I'm calling for Alex about a prescription."  # type: ignore[union-attr]
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "text", "text": "The reference is RX-9."}]}]
    async with client.messages.stream(model=MODEL, max_tokens=200, system=system, tools=TOOLS,
                                      messages=messages) as stream:
        second = await stream.get_final_message()
    use = second.content[1]
    assert use.type == "tool_use" and use.input == {"label": "reference number", "value": "RX-9"}
    messages += [{"role": "assistant", "content": second.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": [{"type": "text", "text": "ok"}]}]}]
    third = await client.messages.create(model=MODEL, max_tokens=200, system=system, tools=TOOLS,
                                         messages=messages)
    assert third.stop_reason == "tool_use" and third.content[1].name == "end_call"  # type: ignore[union-attr]

    seen = emu.requests[2].conversation
    assert seen.system == "You call a pharmacy.\n\nBe brief."
    assert [t.role for t in seen.messages] == ["user", "assistant", "user", "assistant", "tool"]
    assert seen.messages[3].tool_calls[0].id == use.id and seen.messages[4].tool_call_id == use.id
    assert seen.messages[4].text == "ok" and [t.name for t in seen.tools] == ["note_fact", "end_call"]
    assert emu.requests[2].body["messages"][-1]["content"][0]["tool_use_id"] == use.id
    assert [r.endpoint for r in emu.requests] == ["/v1/messages"] * 3
    assert emu.usage.output_tokens == sum(r.output_tokens for r in emu.requests)
    assert emu.usage.output_tokens == first.usage.output_tokens + second.usage.output_tokens + \
        third.usage.output_tokens


async def test_summary_tool_gets_a_summary_call(sim) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = sim
    transcript = ("agent: Hi, is the prescription ready?\n"
                  "callee: Yes, it's ready, the order number is 99812. Please bring your ID.")
    result = await client.messages.create(
        model=MODEL, max_tokens=500, system="You summarise calls.",
        tools=[{"name": "record_summary", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": transcript}])
    call = result.content[0]
    assert call.type == "tool_use" and call.name == "record_summary"
    assert call.input["outcome"] == "success"  # type: ignore[index]
    assert {"label": "order number", "value": "99812"} in call.input["facts"]  # type: ignore[index]
    assert call.input["next_steps"] == ["Please bring your ID."]  # type: ignore[index]


async def test_auth_headers_and_version_header(sim) -> None:  # type: ignore[no-untyped-def]
    _, _, url = sim
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=url) as http:
        ok = await http.post("/v1/messages", json=body,
                             headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
        no_version = await http.post("/v1/messages", json=body, headers={"x-api-key": KEY})
        no_tokens = await http.post("/v1/messages", json={**body, "max_tokens": None},
                                    headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert no_tokens.status_code == 400 and "max_tokens" in no_tokens.json()["error"]["message"]

    client = anthropic.AsyncAnthropic(api_key="sk-ant-wrong", base_url=url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert caught.value.body["type"] == "error"  # type: ignore[index]


@pytest.mark.parametrize(("status", "error", "kind"), [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
    (500, anthropic.InternalServerError, "api_error"),
])
async def test_http_faults_raise_the_sdk_errors(sim, status: int, error: type, kind: str) -> None:  # type: ignore
    emu, client, _ = sim
    emu.faults.http_status = status
    with pytest.raises(error) as caught:
        await client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == kind
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"
    assert emu.requests == []


async def test_drop_mid_stream_breaks_the_sdk_stream(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.drop_after_tokens = 3
    received = ""
    # anthropic 2.x does not wrap errors raised while reading a stream: the transport error surfaces.
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        async with client.messages.stream(model=MODEL, max_tokens=100,
                                          messages=[{"role": "user", "content": "hi"}]) as stream:
            async for delta in stream.text_stream:
                received += delta
    assert received == "Hi, I"
    assert emu.requests[0].status == "dropped" and emu.requests[0].output_tokens == 3


async def test_max_tokens_stop_reason(sim) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = sim
    result = await client.messages.create(model=MODEL, max_tokens=4,
                                          messages=[{"role": "user", "content": "hi"}])
    assert result.stop_reason == "max_tokens" and result.usage.output_tokens == 4
    assert result.content[0].text == "Hi, I'"  # type: ignore[union-attr]


async def test_in_stream_overloaded_error_event(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.error_after_tokens = 2
    received = ""
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model=MODEL, max_tokens=100,
                                          messages=[{"role": "user", "content": "hi"}]) as stream:
            async for delta in stream.text_stream:
                received += delta
    assert received == "Hi,"
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert emu.requests[0].status == "error"
