"""OpenAI Chat Completions emulator, answering from a scripted brain.

Follows platform.openai.com/docs/api-reference/chat/create, .../chat/object and
.../chat/streaming (the chat.completion.chunk object), and platform.openai.com/docs/guides/error-codes
with .../api-reference/introduction (errors, Bearer auth, x-request-id). Checked against the
installed openai 3.57 SDK: its ``AsyncStream`` parses ``data:`` lines until ``data: [DONE]`` and
raises on a chunk carrying ``error``; its chat-completion stream helper reassembles ``tool_calls``
deltas by ``index``.

Wire shape of a stream: a role chunk (``delta.role = "assistant"``), content deltas, per tool call a
first delta with ``index``, ``id``, ``type`` and ``function.name`` plus empty ``arguments``, then
argument fragments only; a last choice chunk with an empty delta and ``finish_reason``; with
``stream_options.include_usage`` every chunk has ``usage: null`` and one more chunk with empty
``choices`` carries the usage; then ``data: [DONE]``.
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

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    # status: (type, code, message)
    400: ("invalid_request_error", None, "Invalid request."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, message: str | None = None, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    kind, default_code, default_message = _ERRORS.get(status, ("server_error", None, f"Error {status}"))
    return {"error": {"message": message or default_message, "type": kind, "param": param,
                      "code": code or default_code}}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_raw": raw}
    return parsed if isinstance(parsed, dict) else {"_raw": raw}


def to_conversation(body: dict[str, Any]) -> Conversation:
    """Normalise a chat.completions request body."""
    conv = Conversation(model=body.get("model", ""), stream=bool(body.get("stream")), provider="openai",
                        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"))
    fmt = body.get("response_format") or {}
    conv.json_output = fmt.get("type") in ("json_object", "json_schema")
    system: list[str] = []
    for msg in body.get("messages", []):
        role, text = msg.get("role"), _text_of(msg.get("content"))
        if role in ("system", "developer"):
            if conv.messages:
                conv.messages.append(Turn(role="system", text=text))
            else:
                system.append(text)
        elif role == "assistant":
            calls = [ToolCall(c["function"]["name"], _arguments(c["function"].get("arguments")), c.get("id"))
                     for c in msg.get("tool_calls") or []]
            conv.messages.append(Turn(role="assistant", text=text, tool_calls=calls))
        elif role == "tool":
            conv.messages.append(Turn(role="tool", text=text, tool_call_id=msg.get("tool_call_id")))
        else:
            conv.messages.append(Turn(role="user", text=text))
    conv.system = "\n\n".join(system)
    for tool in body.get("tools") or []:
        fn = tool.get("function", {})
        conv.tools.append(ToolSpec(fn.get("name", ""), fn.get("description", ""), fn.get("parameters", {})))
    return conv


class OpenAIEmulator(LLMEmulator):
    """``POST /v1/chat/completions`` (and ``/chat/completions``), streaming or not."""

    tool_id_prefix = "call_"
    to_conversation = staticmethod(to_conversation)

    def __init__(self, brain: Brain, **timing: Any) -> None:
        super().__init__(brain, **timing)
        self.app = Starlette(routes=[Route(path, self._chat, methods=["POST"])
                                     for path in ("/v1/chat/completions", "/chat/completions")])

    def _auth_error(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        key = header[7:] if header.lower().startswith("bearer ") else None
        if self.key_ok(key):
            return None
        if not key:
            message = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            return JSONResponse(error_body(401, message, code=None), status_code=401)
        shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:]
        message = (f"Incorrect API key provided: {shown}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
        body = error_body(401, message, code="invalid_api_key")
        body["error"]["type"] = "invalid_request_error"
        return JSONResponse(body, status_code=401)

    async def _chat(self, request: Request) -> Response:
        headers = {"x-request-id": random_id("req_", 32), "openai-processing-ms": "1"}
        if (denied := self._auth_error(request)) is not None:
            return denied
        fault = self.faults.http_status
        if (failed := await self.faults.before_http(error_body(fault) if fault else None)) is not None:
            return failed
        raw = await request.body()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return JSONResponse(error_body(400, "We could not parse the JSON body of your request."), 400)
        for required in ("model", "messages"):
            if not body.get(required):
                return JSONResponse(error_body(400, f"Missing required parameter: '{required}'.",
                                               code="missing_required_parameter", param=required), 400)
        conv = to_conversation(body)
        try:
            record = await self.decide(request.url.path, raw, conv)
        except Exception as exc:  # the brain's failure must reach the test as an API error
            return JSONResponse(error_body(500, f"emulated brain failed: {exc!r}"), 500, headers=headers)
        pieces = cut(record.reply or _EMPTY, conv.max_tokens)
        if conv.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            error = Frame(_sse(error_body(500)))
            frames = self._frames(record, conv.model, pieces, include_usage)
            return PacedStream(self, record, frames, headers, error)
        await self.generation_time(pieces.output_tokens)
        self.finish(record, pieces.output_tokens, "ok")
        return JSONResponse(self._completion(record, conv.model, pieces), headers=headers)

    def _completion(self, record: RecordedRequest, model: str, pieces: Pieces) -> dict[str, Any]:
        reply = record.reply or _EMPTY
        message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces.text) or None,
                                   "refusal": None, "annotations": []}
        calls = reply.tool_calls[:len(pieces.tools)]
        if calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                     for c in calls]
        return {**_envelope(record, model, "chat.completion"),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": _finish_reason(pieces)}],
                "usage": _usage(record.input_tokens, pieces.output_tokens)}

    def _frames(self, record: RecordedRequest, model: str, pieces: Pieces,
                include_usage: bool) -> list[Frame]:
        base = _envelope(record, model, "chat.completion.chunk")
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], tokens: int = 0, finish: str | None = None,
                  first: bool = False) -> Frame:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return Frame(_sse({**base, "choices": [choice]}), tokens, first)

        frames = [chunk({"role": "assistant", "content": "" if pieces.text else None, "refusal": None},
                        first=True)]
        frames += [chunk({"content": piece}, 1) for piece in pieces.text]
        reply = record.reply or _EMPTY
        for index, (call, fragments) in enumerate(zip(reply.tool_calls, pieces.tools, strict=False)):
            opening = {"index": index, "id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": ""}}
            frames.append(chunk({"tool_calls": [opening]}, 1))
            frames += [chunk({"tool_calls": [{"index": index, "function": {"arguments": f}}]}, 1)
                       for f in fragments]
        frames.append(chunk({}, finish=_finish_reason(pieces)))
        if include_usage:
            usage = _usage(record.input_tokens, pieces.output_tokens)
            frames.append(Frame(_sse({**base, "choices": [], "usage": usage})))
        frames.append(Frame(b"data: [DONE]\n\n"))
        return frames


def create_openai_app(brain: Brain, *, ttft_s: float = 0.25, tokens_per_s: float = 60.0,
                      api_key: str | None = None) -> OpenAIEmulator:
    """An OpenAI emulator; serve ``.app`` with ``sim.server.serve`` and use ``base_url=f"{url}/v1"``."""
    return OpenAIEmulator(brain, ttft_s=ttft_s, tokens_per_s=tokens_per_s, api_key=api_key)


def _finish_reason(pieces: Pieces) -> str:
    if pieces.truncated:
        return "length"
    return "tool_calls" if pieces.tools else "stop"


def _envelope(record: RecordedRequest, model: str, kind: str) -> dict[str, Any]:
    # One completion id per request, derived from the arrival time so every chunk repeats it.
    ident = f"chatcmpl-sim{id(record):x}{int(record.at * 1000):x}"
    return {"id": ident, "object": kind, "created": int(record.at), "model": model,
            "service_tier": "default", "system_fingerprint": "fp_sim0001"}


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


_EMPTY = Reply()
