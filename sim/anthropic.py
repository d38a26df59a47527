"""Anthropic Messages API emulator, answering from a scripted brain.

Follows docs.anthropic.com/en/api/messages (request and Message object),
docs.anthropic.com/en/api/messages-streaming (event flow: message_start, content_block_start, ping,
content_block_delta text_delta / input_json_delta, content_block_stop, message_delta, message_stop)
and docs.anthropic.com/en/api/errors (error shape, 529 overloaded_error, request-id header).
Checked against the installed anthropic 2.14 SDK: it sends ``Authorization: Bearer`` (older SDKs
and curl send ``x-api-key``; both are accepted) plus ``anthropic-version``; its stream reader drops
SSE events without an ``event:`` line, skips ``ping`` and raises on ``error``; its MessageStream
accumulates ``partial_json`` per content block index and takes usage from message_delta.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sim.llm_emulator import Frame, LLMEmulator, PacedStream, Pieces, RecordedRequest, cut, random_id
from sim.llm_script import Brain, Conversation, Reply, ToolCall, ToolSpec, Turn

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                529: "overloaded_error"}
_MESSAGES = {429: "Number of request tokens has exceeded your per-minute rate limit.",
             500: "Internal server error", 529: "Overloaded"}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or _MESSAGES.get(status, kind)},
            "request_id": random_id("req_", 24)}


def _error(status: int, message: str | None = None) -> JSONResponse:
    body = error_body(status, message)
    return JSONResponse(body, status_code=status, headers={"request-id": body["request_id"]})


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _result_text(content: Any) -> str:
    return "".join(b.get("text", "") for b in _blocks(content) if b.get("type") == "text")


def to_conversation(body: dict[str, Any]) -> Conversation:
    """Normalise a messages request body; a user message's tool_result blocks become tool turns."""
    conv = Conversation(model=body.get("model", ""), stream=bool(body.get("stream")), provider="anthropic",
                        max_tokens=body.get("max_tokens"))
    system = body.get("system") or ""
    conv.system = system if isinstance(system, str) else "\n\n".join(
        b.get("text", "") for b in system if b.get("type") == "text")
    for msg in body.get("messages", []):
        blocks = _blocks(msg.get("content"))
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        if msg.get("role") == "assistant":
            calls = [ToolCall(b.get("name", ""), b.get("input") or {}, b.get("id"))
                     for b in blocks if b.get("type") == "tool_use"]
            conv.messages.append(Turn(role="assistant", text=text, tool_calls=calls))
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                conv.messages.append(Turn(role="tool", text=_result_text(block.get("content")),
                                          tool_call_id=block.get("tool_use_id"),
                                          is_error=bool(block.get("is_error"))))
        if text or not any(b.get("type") == "tool_result" for b in blocks):
            conv.messages.append(Turn(role="user", text=text))
    for tool in body.get("tools") or []:
        conv.tools.append(ToolSpec(tool.get("name", ""), tool.get("description", ""),
                                   tool.get("input_schema", {})))
    return conv


class AnthropicEmulator(LLMEmulator):
    """``POST /v1/messages``, streaming or not."""

    tool_id_prefix = "toolu_01"
    to_conversation = staticmethod(to_conversation)

    def __init__(self, brain: Brain, **timing: Any) -> None:
        super().__init__(brain, **timing)
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key")
        key = key or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
        if not self.key_ok(key):
            return _error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required")
        fault = self.faults.http_status
        if (failed := await self.faults.before_http(error_body(fault) if fault else None)) is not None:
            return failed
        raw = await request.body()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _error(400, "There was an error parsing the body of your request.")
        for required in ("model", "messages", "max_tokens"):
            if not body.get(required):
                return _error(400, f"{required}: Field required")
        headers = {"request-id": random_id("req_", 24)}
        conv = to_conversation(body)
        try:
            record = await self.decide(request.url.path, raw, conv)
        except Exception as exc:  # the brain's failure must reach the test as an API error
            return _error(500, f"emulated brain failed: {exc!r}")
        pieces = cut(record.reply or Reply(), conv.max_tokens)
        message_id = random_id("msg_01", 22)
        if conv.stream:
            overloaded = error_body(529)
            error = _event("error", {"error": overloaded["error"], "request_id": overloaded["request_id"]})
            return PacedStream(self, record, _frames(record, conv.model, pieces, message_id), headers, error)
        await self.generation_time(pieces.output_tokens)
        self.finish(record, pieces.output_tokens, "ok")
        content = _content(record, pieces)
        message = _message(record, conv.model, pieces, message_id, content, pieces.output_tokens)
        return JSONResponse(message, headers=headers)


def create_anthropic_app(brain: Brain, *, ttft_s: float = 0.25, tokens_per_s: float = 60.0,
                         api_key: str | None = None) -> AnthropicEmulator:
    """An Anthropic emulator; serve ``.app`` with ``sim.server.serve`` and use ``base_url=url``."""
    return AnthropicEmulator(brain, ttft_s=ttft_s, tokens_per_s=tokens_per_s, api_key=api_key)


def _stop_reason(pieces: Pieces) -> str:
    if pieces.truncated:
        return "max_tokens"
    return "tool_use" if pieces.tools else "end_turn"


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "service_tier": "standard"}


def _message(record: RecordedRequest, model: str, pieces: Pieces, message_id: str,
             content: list[dict[str, Any]], output_tokens: int,
             stop_reason: str | None = "") -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _stop_reason(pieces) if stop_reason == "" else stop_reason,
            "stop_sequence": None, "usage": _usage(record.input_tokens, output_tokens)}


def _content(record: RecordedRequest, pieces: Pieces) -> list[dict[str, Any]]:
    reply = record.reply or Reply()
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(pieces.text)}] if pieces.text else []
    content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in reply.tool_calls[:len(pieces.tools)]]
    return content


def _event(kind: str, payload: dict[str, Any], tokens: int = 0, first: bool = False) -> Frame:
    data = json.dumps({"type": kind, **payload}, separators=(",", ":"))
    return Frame(f"event: {kind}\ndata: {data}\n\n".encode(), tokens, first)


def _frames(record: RecordedRequest, model: str, pieces: Pieces, message_id: str) -> list[Frame]:
    reply = record.reply or Reply()
    start = _message(record, model, pieces, message_id, [], 1, stop_reason=None)
    frames = [_event("message_start", {"message": start})]
    index = 0
    if pieces.text:
        opening = {"index": 0, "content_block": {"type": "text", "text": ""}}
        frames.append(_event("content_block_start", opening, first=True))
        frames.append(_event("ping", {}))
        frames += [_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}, 1)
                   for p in pieces.text]
        frames.append(_event("content_block_stop", {"index": 0}))
        index = 1
    for call, fragments in zip(reply.tool_calls, pieces.tools, strict=False):
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        frames.append(_event("content_block_start", {"index": index, "content_block": block}, 1, first=True))
        if index == 0:
            frames.append(_event("ping", {}))
        # The API opens every tool input with an empty partial_json before the fragments.
        for fragment in ["", *fragments]:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            tokens = 1 if fragment else 0
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}, tokens))
        frames.append(_event("content_block_stop", {"index": index}))
        index += 1
    final = {"delta": {"stop_reason": _stop_reason(pieces), "stop_sequence": None},
             "usage": {"output_tokens": pieces.output_tokens}}
    frames.append(_event("message_delta", final))
    frames.append(_event("message_stop", {}))
    return frames
