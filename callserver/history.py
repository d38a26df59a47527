"""The conversation as the LLM sees it, provider-neutral, translated per provider on each request.

Also where barge-in is made honest: ``interrupt`` rewrites an assistant turn to the words the callee
actually heard, marked as interrupted, so the model never builds on words that were never played.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

INTERRUPTED = " [interrupted by the callee]"
NOTHING_HEARD = "[interrupted by the callee before anything was heard]"
CALL_CONNECTED = "[The call is connected.]"
NOTE_PREFIX = "Note from the person you are calling for (follow it): "
STATUS_PREFIX = "Call status (from the system, not said by anyone on the line): "

Role = Literal["user", "assistant", "tool", "note"]


@dataclass
class ToolCallRecord:
    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)  # identity: two turns with the same words are still two turns
class Message:
    role: Role
    text: str = ""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    tool_call_id: str = ""
    """role "tool": the call this result answers."""
    is_error: bool = False
    interrupted: bool = False
    source: Literal["owner", "system"] = "owner"
    """role "note": from the person the agent calls for, or the call server's own observation."""

    @property
    def note_text(self) -> str:
        return (NOTE_PREFIX if self.source == "owner" else STATUS_PREFIX) + self.text


@dataclass
class History:
    system: str
    messages: list[Message] = field(default_factory=list)

    def add_user(self, text: str) -> Message:
        return self._add(Message("user", text))

    def add_assistant(self, text: str = "", tool_calls: list[ToolCallRecord] | None = None) -> Message:
        return self._add(Message("assistant", text, list(tool_calls or [])))

    def add_tool_result(self, call_id: str, content: str, *, is_error: bool = False) -> Message:
        return self._add(Message("tool", content, tool_call_id=call_id, is_error=is_error))

    def add_note(self, text: str, *, source: Literal["owner", "system"] = "owner") -> Message:
        return self._add(Message("note", text, source=source))

    def _add(self, message: Message) -> Message:
        self.messages.append(message)
        return message

    def interrupt(self, message: Message, heard: str) -> None:
        """Rewrite ``message`` to what was heard; its tool calls did not happen and are answered so."""
        heard = heard.strip()
        message.text = heard + INTERRUPTED if heard else NOTHING_HEARD
        message.interrupted = True
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        index = self.messages.index(message)
        for offset, call in enumerate(c for c in message.tool_calls if c.id not in answered):
            self.messages.insert(index + 1 + offset, Message(
                "tool", "not done: the callee interrupted", tool_call_id=call.id, is_error=True))

    # --- provider formats -------------------------------------------------------------------

    def to_openai(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": self.system}]
        for m in self.messages:
            if m.role == "user":
                out.append({"role": "user", "content": m.text})
            elif m.role == "note":
                out.append({"role": "system", "content": m.note_text})
            elif m.role == "tool":
                out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
            else:
                item: dict[str, Any] = {"role": "assistant", "content": m.text or None}
                if m.tool_calls:
                    item["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                        "name": c.name, "arguments": json.dumps(c.arguments)}} for c in m.tool_calls]
                elif not m.text:
                    item["content"] = ""
                out.append(item)
        return out

    def to_anthropic(self) -> tuple[str, list[dict[str, Any]]]:
        """(system, messages): strictly alternating roles, starting with the user; tool results and
        notes ride in user turns as content blocks."""
        out: list[dict[str, Any]] = []

        def add(role: str, block: dict[str, Any]) -> None:
            if out and out[-1]["role"] == role:
                out[-1]["content"].append(block)
            else:
                out.append({"role": role, "content": [block]})

        for m in self.messages:
            if m.role == "user":
                add("user", {"type": "text", "text": m.text})
            elif m.role == "note":
                add("user", {"type": "text", "text": m.note_text})
            elif m.role == "tool":
                add("user", {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.text,
                             "is_error": m.is_error})
            else:
                if m.text.strip():
                    add("assistant", {"type": "text", "text": m.text.strip()})
                for c in m.tool_calls:
                    add("assistant", {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments})
        if not out or out[0]["role"] != "user":
            out.insert(0, {"role": "user", "content": [{"type": "text", "text": CALL_CONNECTED}]})
        return self.system, out
