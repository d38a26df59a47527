"""The OpenAI emulator driven by the real openai SDK (AsyncOpenAI against sim.openai on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from sim.llm_script import Conversation, Reply, ReplyQueue, Rule, ScriptedBrain, ToolCall
from sim.openai import OpenAIEmulator, create_openai_app
from sim.server import serve

KEY = "sk-test-0123456789"
MODEL = "gpt-4o-mini"
NOTE_SCHEMA = {"type": "object", "properties": {"value": {"type": "string"}}}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "note_fact", "description": "Record a fact",
                                      "parameters": NOTE_SCHEMA}},
    {"type": "function", "function": {"name": "end_call", "description": "Hang up", "parameters": {}}},
]
BRAIN = ScriptedBrain([
    Rule(first_turn=True, say="Hello, I'm calling on behalf of Alex about an appointment.", once=True),
    Rule(user=r"reference (?:number )?is (?P<ref>[A-Z]+-\d+)", say="Let me note that.",
         calls=[ToolCall("note_fact", {"label": "reference number", "value": "{ref}"})]),
    Rule(after_tool="note_fact", say="Thank you, that's everything I needed."),
])


@pytest.fixture
async def sim() -> AsyncIterator[tuple[OpenAIEmulator, openai.AsyncOpenAI, str]]:
    emu = create_openai_app(BRAIN, ttft_s=0.05, tokens_per_s=400, api_key=KEY)
    async with serve(emu.app) as url:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
        yield emu, client, url
        await client.close()


async def test_text_stream_honours_ttft_and_token_rate() -> None:
    text = "Hello, I'm calling on behalf of Alex about moving an appointment to next week."
    emu = create_openai_app(ReplyQueue([text]), ttft_s=0.3, tokens_per_s=50, api_key=KEY)
    async with serve(emu.app) as url:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
        start = time.perf_counter()
        arrivals: list[float] = []
        deltas: list[str] = []
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter() - start)
                deltas.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
    assert "".join(deltas) == text
    assert all(len(d) <= 7 for d in deltas)
    expected_end = 0.3 + (len(deltas) - 1) / 50
    assert 0.28 <= arrivals[0] < 0.45
    assert expected_end - 0.03 <= arrivals[-1] < expected_end + 0.2
    assert usage is not None and usage.completion_tokens == len(deltas)
    assert emu.usage.output_tokens == len(deltas) and emu.requests[0].status == "ok"


async def test_fast_tokens_are_paced_by_timer_ticks_not_a_busy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 2000 tokens/s a token is due every 0.5 ms; uvloop rounds such a sleep to 0 ms, which would spin
    the emulator's loop. After the first frame it waits at least a tick; no token is sent before it is due."""
    from sim import llm_emulator

    text = "Okay, got it, I will check that for you right away and call you back."
    emu = create_openai_app(ReplyQueue([text]), ttft_s=0.05, tokens_per_s=2000, api_key=KEY)
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float, *args: Any) -> Any:
        sleeps.append(delay)
        return await real_sleep(delay, *args)

    monkeypatch.setattr(llm_emulator.asyncio, "sleep", recorded_sleep)
    async with serve(emu.app) as url:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
        start = time.perf_counter()
        arrivals: list[float] = []
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter() - start)
        await client.close()
    assert len(arrivals) > 10
    # the only sub-tick wait allowed is the last bit of the time to first token
    assert sum(1 for d in sleeps if d < llm_emulator.TIMER_TICK_S) <= 1, sleeps
    # never early: token k no sooner than TTFT + k/rate after the request
    assert all(t >= 0.05 + k / 2000 - 0.002 for k, t in enumerate(arrivals))


async def test_streamed_tool_call_has_the_real_delta_shape(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    stream = await client.chat.completions.create(
        model=MODEL, tools=TOOLS, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "You call a clinic."},
                  {"role": "assistant", "content": "Hi."},
                  {"role": "user", "content": "Your reference number is PA-48213."}])
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    tool_deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    opening, fragments = tool_deltas[0], tool_deltas[1:]
    assert opening.index == 0 and opening.id and opening.id.startswith("call_") and opening.type == "function"
    assert opening.function.name == "note_fact" and opening.function.arguments == ""
    assert len(fragments) > 3 and all(f.id is None and f.function.name is None for f in fragments)
    arguments = json.loads("".join(f.function.arguments for f in fragments))
    assert arguments == {"label": "reference number", "value": "PA-48213"}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1
    assert emu.requests[0].reply.tool_calls[0].id == opening.id


async def test_sdk_stream_helper_reassembles_tool_calls_and_multi_turn_is_logged(sim) -> None:  # type: ignore
    emu, client, _ = sim
    messages: list[Any] = [{"role": "system", "content": "You call a clinic."},
                           {"role": "user", "content": "Hello?"}]
    first = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert first.choices[0].message.content == "Hello, I'm calling on behalf of Alex about an appointment."
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "user", "content": "OK. The reference is PA-7."}]
    async with client.chat.completions.stream(model=MODEL, messages=messages, tools=TOOLS) as stream:
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"label": "reference number", "value": "PA-7"}
    messages += [final.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "saved"}]
    third = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert third.choices[0].message.content == "Thank you, that's everything I needed."

    assert [r.endpoint for r in emu.requests] == ["/v1/chat/completions"] * 3
    seen = emu.requests[2].conversation
    assert seen.system == "You call a clinic."
    assert [t.role for t in seen.messages] == ["user", "assistant", "user", "assistant", "tool"]
    assert seen.messages[3].tool_calls[0].arguments == {"label": "reference number", "value": "PA-7"}
    assert seen.messages[4].tool_call_id == call.id and seen.tools[0].name == "note_fact"
    last_sent = emu.requests[2].body["messages"][-1]
    assert last_sent == {"role": "tool", "tool_call_id": call.id, "content": "saved"}
    assert emu.usage.requests == 3
    assert emu.usage.input_tokens == sum(r.input_tokens for r in emu.requests) > 0
    assert third.usage.prompt_tokens == emu.requests[2].input_tokens


async def test_summary_request_with_json_response_format(sim) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = sim
    result = await client.chat.completions.create(
        model=MODEL, response_format={"type": "json_object"},
        messages=[{"role": "system", "content": "Summarize this phone call."},
                  {"role": "user", "content": "callee: Booked for May 3rd, confirmation number is 55-1."}])
    data = json.loads(result.choices[0].message.content or "")
    assert data["outcome"] == "success"
    assert {"label": "confirmation number", "value": "55-1"} in data["facts"]


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(sim) -> None:  # type: ignore
    _, client, _ = sim
    result = await client.chat.completions.create(
        model=MODEL, max_completion_tokens=3, messages=[{"role": "user", "content": "Hello?"}])
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == "Hello, I"
    assert result.usage.completion_tokens == 3


async def test_bad_key_is_401_in_the_real_error_shape(sim) -> None:  # type: ignore[no-untyped-def]
    _, _, url = sim
    client = openai.AsyncOpenAI(api_key="sk-wrong-key-000", base_url=f"{url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert caught.value.body == {"message": caught.value.body["message"], "type": "invalid_request_error",  # type: ignore
                                 "param": None, "code": "invalid_api_key"}
    assert "Incorrect API key provided" in caught.value.message


async def test_rate_limit_429_raises_after_retries_and_500_is_retried(sim) -> None:  # type: ignore
    emu, client, url = sim
    emu.faults.http_status = 429
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    emu.faults.reset()
    emu.faults.http_status, emu.faults.fail_count = 500, 1
    retrying = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=1)
    result = await retrying.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content and emu.faults.failed == 1


async def test_drop_mid_stream_breaks_the_sdk_stream(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.drop_after_tokens = 4
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "Hello?"}])
    received = ""
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert received == "Hello, I'"
    assert emu.requests[0].status == "dropped" and emu.requests[0].output_tokens == 4


async def test_client_closing_the_stream_cancels_generation(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.tokens_per_s = 20
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "Hello?"}])
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    await stream.close()
    for _ in range(100):
        if emu.requests[0].status != "pending":
            break
        await asyncio.sleep(0.01)
    assert emu.requests[0].status == "cancelled"
    assert emu.requests[0].output_tokens < 5


async def test_brain_failure_surfaces_as_server_error(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.brain = ReplyQueue([])
    with pytest.raises(openai.InternalServerError, match="ReplyQueue is empty"):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert emu.requests[0].status == "error"


async def test_base_url_without_v1_and_tool_only_reply(sim) -> None:  # type: ignore[no-untyped-def]
    emu, _, url = sim
    calls = [ToolCall("end_call", {}), ToolCall("note_fact", {"value": "x"})]
    emu.brain = ReplyQueue([Reply(tool_calls=calls)])
    client = openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0)
    result = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "bye"}])
    message = result.choices[0].message
    assert message.content is None
    assert [c.function.name for c in message.tool_calls] == ["end_call", "note_fact"]
    assert emu.requests[0].endpoint == "/chat/completions"


async def test_in_stream_error_chunk_raises_api_error(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    emu.error_after_tokens = 2
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "Hello?"}])
    received = ""
    with pytest.raises(openai.APIError, match="server had an error"):
        async for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert received == "Hello,"
    assert emu.requests[0].status == "error"


async def test_stall_pauses_a_running_stream(sim) -> None:  # type: ignore[no-untyped-def]
    emu, client, _ = sim
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "Hello?"}])
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
            if len(arrivals) == 2:
                emu.faults.stall = True
                asyncio.get_running_loop().call_later(0.3, setattr, emu.faults, "stall", False)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.25 and sorted(gaps)[-2] < 0.1
    assert emu.requests[0].status == "ok"


async def test_request_log_keeps_the_body_bytes_and_gives_what_the_brain_saw() -> None:
    """The log keeps each request body as the bytes received; ``body`` and ``conversation`` are parsed from
    them and equal what the emulator parsed for the reply: the JSON sent, and the conversation the brain
    was given."""
    given: list[Conversation] = []

    def brain(conv: Conversation) -> Reply:
        given.append(copy.deepcopy(conv))
        return Reply("Let me note that.", [ToolCall("note_fact", {"value": "PA-7"})])

    emu = create_openai_app(brain, ttft_s=0.0, tokens_per_s=1e6, api_key=KEY)
    sent: list[bytes] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(request.read())

    async with serve(emu.app) as url:
        http = httpx.AsyncClient(event_hooks={"request": [keep]})
        client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0, http_client=http)
        messages: list[Any] = [{"role": "system", "content": "You call a clinic."},
                               {"role": "user", "content": "The reference is PA-7."}]
        first = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": first.choices[0].message.tool_calls[0].id,
                      "content": "saved"}]
        async with client.chat.completions.stream(model=MODEL, messages=messages, tools=TOOLS) as stream:
            await stream.get_final_completion()
        await client.close()
    assert [r.raw for r in emu.requests] == sent and len(sent) == 2
    assert [r.body for r in emu.requests] == [json.loads(b) for b in sent]
    assert [r.conversation for r in emu.requests] == given
    assert given[1].messages[-1].role == "tool" and given[1].tools[0].parameters == NOTE_SCHEMA
