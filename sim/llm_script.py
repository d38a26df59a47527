"""Scripted "brains" for the OpenAI and Anthropic emulators.

Both emulators normalise a request into a provider-neutral ``Conversation`` and ask a ``Brain`` what
the model says next (a ``Reply``: text and/or tool calls). Scenarios script the agent with rules
(``ScriptedBrain``), built in Python or loaded from YAML; unit tests can queue exact replies
(``ReplyQueue``). Summary requests are recognised and answered from the conversation itself
(see ``sim.llm_summary``).

A rule's "fired once" state is read back from the history the client sent, not kept in the brain,
so one brain can serve many concurrent calls.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sim import llm_summary

Role = Literal["user", "assistant", "tool", "system"]


@dataclass
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    """The tool's JSON schema (OpenAI ``parameters`` / Anthropic ``input_schema``)."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    """Filled by the emulator in the provider's format (``call_...`` / ``toolu_...``) when None."""


@dataclass
class Turn:
    role: Role
    text: str = ""
    """Message text; for role "tool", the tool result content."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    """Role "tool": the id of the call this result answers."""
    is_error: bool = False


@dataclass
class Conversation:
    system: str = ""
    messages: list[Turn] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    model: str = ""
    stream: bool = False
    max_tokens: int | None = None
    json_output: bool = False
    """The client asked for JSON (OpenAI ``response_format`` json_object / json_schema)."""
    provider: str = ""

    def pending(self) -> list[Turn]:
        """The turns after the last assistant turn: what the model is answering now."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                return self.messages[i + 1:]
        return list(self.messages)

    def pending_user_text(self) -> str:
        # Mid-conversation system/developer notes count as input too: the product injects the
        # owner's live instructions that way on OpenAI.
        return "\n".join(t.text for t in self.pending() if t.role in ("user", "system") and t.text)

    def last_user_text(self) -> str:
        return next((t.text for t in reversed(self.messages) if t.role == "user"), "")

    def pending_tool_results(self) -> list[Turn]:
        return [t for t in self.pending() if t.role == "tool"]

    def tool_name_for(self, call_id: str | None) -> str | None:
        for turn in self.messages:
            for call in turn.tool_calls:
                if call.id == call_id:
                    return call.name
        return None

    def has_tool(self, name: str) -> bool:
        return any(t.name == name for t in self.tools)

    def assistant_turns(self) -> list[Turn]:
        return [t for t in self.messages if t.role == "assistant"]

    def prompt_chars(self) -> int:
        """Size of everything the model reads, for the ~4 chars/token usage estimate."""
        size = len(self.system)
        for turn in self.messages:
            size += len(turn.text) + sum(len(c.name) + len(json.dumps(c.arguments)) for c in turn.tool_calls)
        for tool in self.tools:
            size += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
        return size


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


Brain = Callable[[Conversation], "Reply | str | Awaitable[Reply | str]"]

_TOKEN_RE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]| ?_+|\s+")


def split_tokens(text: str) -> list[str]:
    """Cut text into token-sized pieces (a word or word piece of <= 6 chars, a digit group, a
    punctuation mark), like the deltas a real model streams. ``"".join`` gives the text back."""
    pieces: list[str] = []
    for piece in _TOKEN_RE.findall(text):
        while len(piece) > 7:
            pieces.append(piece[:4])
            piece = piece[4:]
        pieces.append(piece)
    return pieces


def estimate_tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4) if chars else 0


def as_reply(value: Reply | str | None) -> Reply:
    if value is None:
        return Reply()
    return Reply(text=value) if isinstance(value, str) else value


class ReplyQueue:
    """Returns queued replies in order; when empty, ``default`` (or LookupError if None)."""

    def __init__(self, replies: Iterable[Reply | str] = (), default: Reply | str | None = None) -> None:
        self._queue: deque[Reply] = deque(as_reply(r) for r in replies)
        self.default = default
        self.seen: list[Conversation] = []

    def push(self, *replies: Reply | str) -> None:
        self._queue.extend(as_reply(r) for r in replies)

    def __len__(self) -> int:
        return len(self._queue)

    def __call__(self, conv: Conversation) -> Reply:
        self.seen.append(conv)
        if self._queue:
            return self._queue.popleft()
        if self.default is None:
            raise LookupError("ReplyQueue is empty and has no default reply")
        return as_reply(self.default)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render(template: Any, groups: dict[str, str]) -> Any:
    """Substitute ``{1}`` / ``{name}`` regex groups into strings, recursively; unknown braces stay."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), m.group(0)), template)
    if isinstance(template, dict):
        return {k: render(v, groups) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, groups) for v in template]
    return template


def _words(text: str) -> list[str]:
    return re.findall(r"[\w{}']+", text.lower())


@dataclass
class Rule:
    """When all given conditions hold, reply with ``say`` and/or ``calls`` (templated with the
    regex groups of ``system``, ``tool_result`` and ``user``, in that order of precedence)."""

    say: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    user: str | None = None
    """Regex searched in the user (and injected system) text sent since the last assistant turn."""
    system: str | None = None
    tool_result: str | None = None
    """Regex searched in the newest pending tool result."""
    after_tool: str | None = None
    """The pending tool result answers a call of this tool."""
    tool_available: str | None = None
    first_turn: bool = False
    """Only while there is no assistant turn yet."""
    once: bool = False
    priority: int = 0
    when: Callable[[Conversation], bool] | None = None
    name: str = ""
    flags: int = re.IGNORECASE | re.DOTALL

    def match(self, conv: Conversation) -> dict[str, str] | None:
        """The template groups if this rule applies to ``conv``, else None."""
        if self.first_turn and conv.assistant_turns():
            return None
        if self.tool_available and not conv.has_tool(self.tool_available):
            return None
        results = conv.pending_tool_results()
        answered = conv.tool_name_for(results[-1].tool_call_id) if results else None
        if self.after_tool and answered != self.after_tool:
            return None
        groups: dict[str, str] = {}
        for pattern, text in ((self.system, conv.system),
                              (self.tool_result, results[-1].text if results else None),
                              (self.user, conv.pending_user_text())):
            if pattern is None:
                continue
            found = re.search(pattern, text, self.flags) if text is not None else None
            if found is None:
                return None
            groups.update({str(i): g or "" for i, g in enumerate([found.group(0), *found.groups()])})
            groups.update({k: v or "" for k, v in found.groupdict().items()})
        if self.when is not None and not self.when(conv):
            return None
        if self.once and self.fired_in(conv):
            return None
        return groups

    def fired_in(self, conv: Conversation) -> bool:
        """Whether an assistant turn in the history already carries this rule's reply.

        Text counts when the turn starts with the template's words (placeholders match any word),
        or with at least its first three words when the product cut the turn short on barge-in."""
        template = _words(self.say or "")
        names = {c.name for c in self.calls}
        for turn in conv.assistant_turns():
            if names & {c.name for c in turn.tool_calls}:
                return True
            said = _words(turn.text)
            n = min(len(said), len(template))
            if template and n >= min(3, len(template)) and all(
                "{" in t or t == s for t, s in zip(template[:n], said[:n], strict=True)
            ):
                return True
        return False

    def produce(self, groups: dict[str, str]) -> Reply:
        calls = [ToolCall(name=c.name, arguments=render(c.arguments, groups)) for c in self.calls]
        return Reply(text=render(self.say or "", groups), tool_calls=calls)


class ScriptedBrain:
    """Picks the highest-priority matching rule (ties: first listed).

    Summary requests are answered first (``summary=None`` turns that off); when no rule matches,
    ``default`` answers (a Reply, text, or another Brain), or LookupError is raised if it is None.
    """

    def __init__(
        self, rules: Iterable[Rule] = (),
        default: Reply | str | Brain | None = "Sorry, could you say that again?",
        summary: llm_summary.SummaryConfig | None = None, summaries: bool = True,
    ) -> None:
        self.rules = list(rules)
        self.default = default
        self.summary = summary or llm_summary.SummaryConfig()
        self.summaries = summaries

    def __call__(self, conv: Conversation) -> Reply | str | Awaitable[Reply | str]:
        if self.summaries and (reply := summary_reply(conv, self.summary)) is not None:
            return reply
        best: tuple[Rule, dict[str, str]] | None = None
        for rule in self.rules:
            groups = rule.match(conv)
            if groups is not None and (best is None or rule.priority > best[0].priority):
                best = (rule, groups)
        if best is not None:
            return best[0].produce(best[1])
        if self.default is None:
            raise LookupError(f"no rule matches the pending input {conv.pending_user_text()!r}")
        return self.default(conv) if callable(self.default) else as_reply(self.default)


def summary_reply(conv: Conversation, cfg: llm_summary.SummaryConfig) -> Reply | None:
    """A summary-shaped answer if ``conv`` asks for a call summary, else None.

    With a summary tool on offer the summary is that tool's call, otherwise JSON text."""
    tool = next((t for t in conv.tools if re.search(cfg.tool_pattern, t.name, re.IGNORECASE)), None)
    asked = "\n".join([conv.system, *(t.text for t in conv.messages if t.role in ("user", "system"))])
    if tool is None and not llm_summary.asks_for_summary(asked, conv.json_output):
        return None
    lines = [f"{t.role}: {t.text}" for t in conv.messages if t.role != "system" and t.text]
    data = llm_summary.summarise("\n".join(lines), cfg)
    if tool is not None:
        return Reply(tool_calls=[ToolCall(name=tool.name, arguments=data)])
    return Reply(text=json.dumps(data))


def _rule_from_dict(spec: dict[str, Any]) -> Rule:
    spec = dict(spec)
    raw_calls = spec.pop("call", None) or spec.pop("calls", None) or []
    if isinstance(raw_calls, str | dict):
        raw_calls = [raw_calls]
    calls = [ToolCall(name=c) if isinstance(c, str) else ToolCall(c["name"], c.get("arguments", {}))
             for c in raw_calls]
    unknown = set(spec) - {f for f in Rule.__dataclass_fields__ if f not in ("calls", "when", "flags")}
    if unknown:
        raise ValueError(f"unknown rule keys {sorted(unknown)}")
    return Rule(calls=calls, **spec)


def load_brain(source: str | Path | dict[str, Any] | list[Any]) -> ScriptedBrain:
    """A ScriptedBrain from YAML (a path, YAML text, or the parsed data).

    Shape: ``{rules: [...], default: "...", summary: {outcome: ..., facts: ...}}`` or a bare rule list;
    a rule has the ``Rule`` fields plus ``call``/``calls`` (a tool name, ``{name, arguments}``, or a list).
    """
    data: Any = source
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith((".yaml", ".yml"))):
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    elif isinstance(source, str):
        data = yaml.safe_load(source)
    if isinstance(data, list):
        data = {"rules": data}
    rules = [_rule_from_dict(r) for r in data.get("rules", [])]
    summary = llm_summary.SummaryConfig(**data["summary"]) if data.get("summary") else None
    kwargs: dict[str, Any] = {"default": data["default"]} if "default" in data else {}
    return ScriptedBrain(rules, summary=summary, summaries=data.get("summaries", True), **kwargs)
