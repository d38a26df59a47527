"""The agent's tools for hard calls: press_digits (IVR menus, keypad entry) and wait_on_hold.

Both end the agent's turn: after pressing a key the next thing to hear is the menu's answer, and on hold
the next thing is a person; asking the LLM to go on talking would only produce words over a recording.
"""

from __future__ import annotations

from typing import Any

from callserver.tools import ToolDef, ToolHost, ToolRegistry, ToolResult

PRESS_DIGITS = ToolDef(
    "press_digits",
    "Press keys on the phone keypad (DTMF) to answer an automated menu or to enter a number it asks for, "
    "e.g. '2', or '123456789#' for 'enter your member ID followed by pound'. Keys: 0-9 * # A-D, 'w' waits "
    "half a second. Do not say anything in the same reply: menus listen for keys.",
    {"type": "object", "properties": {"digits": {"type": "string", "description": "keys to press in order"}},
     "required": ["digits"]},
)
WAIT_ON_HOLD = ToolDef(
    "wait_on_hold",
    "You were put on hold (hold music, 'please hold', 'your call is important to us'). Stay silent until "
    "a person speaks; you will be told when someone picks up.",
    {"type": "object", "properties": {"reason": {"type": "string", "description": "what you heard"}}},
)


def _hard(host: ToolHost) -> Any:
    return host.hard  # type: ignore[attr-defined]


async def press_digits(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    result = await _hard(host).press(str(args["digits"]))
    return ToolResult(result, ends_turn=True)


async def wait_on_hold(host: ToolHost, args: dict[str, Any]) -> ToolResult:
    _hard(host).enter_hold(str(args.get("reason") or "put on hold"), by="agent")
    return ToolResult("on hold: staying silent until a person speaks", ends_turn=True)


def register(registry: ToolRegistry) -> ToolRegistry:
    """Add the hard-call tools (the session's default set is ``register(default_registry())``)."""
    registry.register(PRESS_DIGITS, press_digits)
    registry.register(WAIT_ON_HOLD, wait_on_hold)
    return registry
