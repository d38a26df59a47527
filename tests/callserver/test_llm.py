"""The LLM providers with the real SDKs against sim's emulators: text + tool calls, retry, fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from callserver.history import History, ToolCallRecord
from callserver.llm.anthropic import AnthropicLLM
from callserver.llm.base import LLM, Done, LLMEvent, TextDelta, ToolCallEvent
from callserver.llm.openai import OpenAILLM
from callserver.llm.resilient import APOLOGY, ResilientLLM
from callserver.tools import default_registry
from sim.anthropic import create_anthropic_app
from sim.llm_script import Reply, ReplyQueue, ToolCall
from sim.openai import create_openai_app
from sim.server import serve

TOOLS = default_registry().defs


def _history() -> History:
    history = History("You call a dentist to book a cleaning.")
    history.add_user("Hello, Smile Dental?")
    return history


async def _collect(events: AsyncIterator[LLMEvent]) -> list[LLMEvent]:
    return [e async for e in events]


@pytest.fixture(params=["openai", "anthropic"])
async def any_sim(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Any]]:
    if request.param == "openai":
        emu: Any = create_openai_app(ReplyQueue(), ttft_s=0.01, tokens_per_s=2000)
    else:
        emu = create_anthropic_app(ReplyQueue(), ttft_s=0.01, tokens_per_s=2000)
    async with serve(emu.app) as url:
        llm: Any = (OpenAILLM(api_key="k", base_url=f"{url}/v1", model="gpt-test")
                    if request.param == "openai"
                    else AnthropicLLM(api_key="k", base_url=url, model="claude-test"))
        yield emu, llm
        await llm.close()


REPLY = Reply("Hi, this is Alex. The reference is AB-12.", [
    ToolCall("note_fact", {"label": "reference", "value": "AB-12"})])


async def test_streams_text_and_tool_calls(any_sim: tuple[Any, Any]) -> None:
    emu, llm = any_sim
    emu.brain.push(REPLY)
    events = await _collect(llm.stream(_history(), TOOLS))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == REPLY.text
    assert len([e for e in events if isinstance(e, TextDelta)]) > 3  # streamed, not one blob
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments) for c in calls] == [("note_fact", {"label": "reference", "value": "AB-12"})]
    assert calls[0].id
    assert isinstance(events[-1], Done) and events[-1].stop_reason in ("tool_calls", "tool_use")
    seen = emu.requests[-1].conversation
    assert seen.system.startswith("You call a dentist")
    assert {t.name for t in seen.tools} == {"end_call", "transfer_call", "note_fact"}


async def test_history_with_tool_results_and_interruption_round_trips(any_sim: tuple[Any, Any]) -> None:
    emu, llm = any_sim
    emu.brain.push("Thanks.")
    history = _history()
    call = ToolCallRecord("call_1", "note_fact", {"label": "a", "value": "b"})
    said = history.add_assistant("Hi, I'd like to schedule a visit for", [call])
    history.interrupt(said, "Hi, I'd like")
    history.add_user("Sorry, who is this?")
    history.add_note("Mention it is urgent.")
    await _collect(llm.stream(history, TOOLS))
    conv = emu.requests[-1].conversation
    assistant = [t.text for t in conv.messages if t.role == "assistant"]
    assert assistant == ["Hi, I'd like [interrupted by the callee]"]
    assert "schedule a visit" not in str(emu.requests[-1].body["messages"])
    assert "Mention it is urgent." in conv.pending_user_text()


async def test_retry_once_then_succeeds(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.brain.push("Recovered.")
    emu.faults.http_status, emu.faults.fail_count = 500, 1
    events = await _collect(ResilientLLM(llm, timeout_s=2).stream(_history(), TOOLS))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Recovered."
    assert emu.faults.failed == 1


async def test_falls_back_to_the_other_provider(openai_sim: tuple[Any, OpenAILLM],
                                                anthropic_sim: tuple[Any, AnthropicLLM]) -> None:
    (oa, openai_llm), (an, anthropic_llm) = openai_sim, anthropic_sim
    oa.faults.http_status = 503
    an.brain.push("Fallback speaking.")
    resilient = ResilientLLM(openai_llm, anthropic_llm, timeout_s=2)
    events = await _collect(resilient.stream(_history(), TOOLS))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Fallback speaking."
    assert oa.faults.failed == 2 and resilient.failures == 2


async def test_apology_when_everything_fails_or_stalls(openai_sim: tuple[Any, OpenAILLM]) -> None:
    emu, llm = openai_sim
    emu.ttft_s = 5.0  # headers at once, first token far beyond the timeout
    events = await _collect(ResilientLLM(llm, timeout_s=0.2).stream(_history(), TOOLS))
    assert events == [TextDelta(APOLOGY), Done("apology")]


class _Broken:
    name = "broken"

    async def stream(self, history: History, tools: Any) -> AsyncIterator[LLMEvent]:
        yield TextDelta("Half a sen")
        raise ConnectionError("gone")

    async def close(self) -> None:
        pass


async def test_mid_reply_failure_ends_the_reply_without_repeating() -> None:
    broken: LLM = _Broken()
    events = await _collect(ResilientLLM(broken, timeout_s=1).stream(_history(), []))
    assert events == [TextDelta("Half a sen"), Done("error")]
