"""Tools the agent may call: defined once, translated per LLM provider, dispatched by name.

A tool is a ``ToolDef`` (name, description, JSON schema) plus an async handler taking the call's
``ToolHost`` (what a tool may do to the call) and the parsed arguments. Adding a tool is one
``registry.register`` call; the next issue adds press_digits, wait_on_hold and ask_owner this way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolResult:
    content: str
    ends_turn: bool = False
    """The call is over or handed off: do not ask the LLM to continue after this tool."""
    is_error: bool = False


class ToolHost(Protocol):
    """What a tool handler may do to the live call (implemented by CallSession)."""

    owner_number: str

    async def wait_played(self) -> None:
        """Until every bit of agent audio queued so far has been played to the callee."""

    async def hang_up(self, reason: str) -> None: ...

    async def transfer(self, number: str) -> None: ...

    def note_fact(self, label: str, value: str) -> None: ...


Handler = Callable[[ToolHost, dict[str, Any]], Awaitable[ToolResult]]


def to_openai(defs: list[ToolDef]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": d.name, "description": d.description,
                                              "parameters": d.parameters}} for d in defs]


def to_anthropic(defs: list[ToolDef]) -> list[dict[str, Any]]:
    return [{"name": d.name, "description": d.description, "input_schema": d.parameters} for d in defs]


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, tuple[ToolDef, Handler]] = {}

    def register(self, definition: ToolDef, handler: Handler) -> None:
        self._tools[definition.name] = (definition, handler)

    @property
    def defs(self) -> list[ToolDef]:
        return [d for d, _ in self._tools.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    async def call(self, host: ToolHost, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run a tool; an unknown tool or bad arguments come back to the model as an error result."""
        entry = self._tools.get(name)
        if entry is None:
            return ToolResult(f"unknown tool {name!r}", is_error=True)
        try:
            return await entry[1](host, arguments)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("tool {} failed on {}: {}", name, arguments, exc)
            return ToolResult(f"error: {exc}", is_error=True)


# --- the built-in tools -----------------------------------------------------------------------

END_CALL = ToolDef(
    "end_call",
    "Hang up. Say your goodbye in the same reply first; the call ends once it has been heard.",
    {"type": "object", "properties": {"reason": {"type": "string", "description": "why the call ends"}}},
)
TRANSFER_CALL = ToolDef(
    "transfer_call",
    "Connect the callee to a person: the owner by default, or the given number. Announce it first in "
    "the same reply.",
    {"type": "object", "properties": {
        "number": {"type": "string", "description": "E.164 number; empty = the owner's number"}}},
)
NOTE_FACT = ToolDef(
    "note_fact",
    "Record a key fact obtained on the call (reference number, date, price, name).",
    {"type": "object", "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
     "required": ["label", "value"]},
)


async def end_call(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    await host.wait_played()  # the goodbye must be heard: wait for its mark, not a fixed sleep
    await host.hang_up(str(args.get("reason") or "end_call"))
    return ToolResult("call ended", ends_turn=True)


async def transfer_call(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    number = str(args.get("number") or "").strip() or host.owner_number
    if not number:
        return ToolResult("no number to transfer to: the owner has no callback number", is_error=True)
    await host.wait_played()
    await host.transfer(number)
    return ToolResult(f"transferred to {number}", ends_turn=True)


async def note_fact(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    label, value = str(args["label"]).strip(), str(args["value"]).strip()
    if not label or not value:
        raise ValueError("label and value are required")
    host.note_fact(label, value)
    return ToolResult(f"noted {label}: {value}")


def default_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(END_CALL, end_call)
    registry.register(TRANSFER_CALL, transfer_call)
    registry.register(NOTE_FACT, note_fact)
    return registry
