"""The post-call summary: the configured LLM reads the transcript and answers with structured JSON.

Runs after the call, off the audio path. Robust to a provider failure or unparseable output: the
fallback summary is built from the facts the agent noted during the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from callserver.history import History
from callserver.llm.base import LLMEvent, TextDelta

OUTCOMES = ("achieved", "partial", "failed", "voicemail", "no_answer", "busy")
_SYNONYMS = {"success": "achieved", "succeeded": "achieved", "done": "achieved", "unclear": "partial",
             "no-answer": "no_answer", "noanswer": "no_answer", "failure": "failed"}

PROMPT = """You summarise a phone call an AI agent made for its owner. Reply with JSON only, no prose:
{"outcome": one of "achieved", "partial", "failed", "voicemail", "no_answer", "busy",
 "summary": two or three plain sentences for the owner,
 "facts": [{"label": "...", "value": "..."}] (reference numbers, dates, times, prices, names obtained),
 "next_steps": ["..."] (what the owner should do next; empty if nothing)}"""


class StreamingLLM(Protocol):
    def stream(self, history: History, tools: list[Any]) -> Any: ...


class _Info(Protocol):
    task: str


@dataclass
class Summary:
    outcome: str
    summary: str
    facts: list[dict[str, str]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def _transcript(lines: list[tuple[str, str]]) -> str:
    return "\n".join(f"{speaker}: {text}" for speaker, text in lines)


def parse(text: str) -> Summary:
    """Summary from the model's answer; ValueError if it holds no JSON object."""
    found = re.search(r"\{.*\}", text, re.DOTALL)
    if found is None:
        raise ValueError("no JSON object in the summary answer")
    data = json.loads(found.group(0))
    outcome = str(data.get("outcome", "")).strip().lower()
    outcome = _SYNONYMS.get(outcome, outcome)
    facts = [{"label": str(f.get("label", "")), "value": str(f.get("value", ""))}
             for f in data.get("facts") or [] if isinstance(f, dict) and f.get("value")]
    steps = data.get("next_steps") or []
    return Summary(outcome if outcome in OUTCOMES else "partial", str(data.get("summary", "")).strip(),
                   facts, [str(s) for s in steps] if isinstance(steps, list) else [str(steps)])


def fallback(lines: list[tuple[str, str]], facts: list[dict[str, str]]) -> Summary:
    noted = "; ".join(f"{f.get('label')}: {f.get('value')}" for f in facts)
    spoken = sum(1 for speaker, _ in lines if speaker == "callee")
    text = f"The call had {spoken} callee turn(s); the automatic summary was unavailable."
    return Summary("partial" if facts else "failed", f"{text} Noted: {noted}." if noted else text,
                   [dict(f) for f in facts], [])


async def summarize(llm: StreamingLLM, info: _Info, lines: list[tuple[str, str]],
                    facts: list[dict[str, str]]) -> Summary:
    history = History(PROMPT)
    noted = "\n".join(f"- {f.get('label')}: {f.get('value')}" for f in facts) or "(none)"
    history.add_user(f"The agent's task: {info.task}\n\nFacts noted during the call:\n{noted}\n\n"
                     f"Transcript:\n{_transcript(lines)}\n\nSummarise this call as JSON.")
    try:
        parts: list[str] = []
        event: LLMEvent
        async for event in llm.stream(history, []):
            if isinstance(event, TextDelta):
                parts.append(event.text)
        return parse("".join(parts))
    except Exception as exc:  # a summary must never lose the call's end
        logger.warning("summary from the LLM failed ({}): using the noted facts", exc)
        return fallback(lines, facts)
