"""What the OpenAI and Anthropic emulators share: brain calls, the request log, usage counting,
token pacing and stream faults.

A provider module turns a request body into a ``Conversation``, asks ``LLMEmulator.decide`` for the
reply, renders it as its own SSE frames and hands them to ``PacedStream``, which sends them at the
configured time-to-first-token and token rate, and implements the stream faults (stall, drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import secrets
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sim.faults import Faults
from sim.llm_script import Brain, Conversation, Reply, as_reply, estimate_tokens, split_tokens

TIMER_TICK_S = 0.001
"""The shortest wait this emulator sleeps. uvloop keeps timers in whole milliseconds (a 0.4 ms delay
becomes 0), so pacing tokens 0.5 ms apart by sleeping to each one's due time is a busy loop: on a shared
2-core machine it takes the CPU from the process under test just when its first token arrives (the
kernel may run that process on the spinning core only once the loop stops). Once the first frame is
out, a token due sooner than a tick waits a full tick: late by under a millisecond, never early. The
first frame is still sent on time to the sub-millisecond (the floor counts from it; nothing of the
client's runs then: it is waiting for that frame)."""

Status = Literal["pending", "ok", "cancelled", "dropped", "error"]


@dataclass
class RecordedRequest:
    """One request as the emulator saw it, and how it ended."""

    endpoint: str
    raw: bytes
    """The request body as received. The log keeps these bytes and parses ``body`` and ``conversation``
    from them when asked: kept parsed, every request's messages, tool schemas, turns and tool specs (~80
    dicts, lists and objects for a call's chat request) stayed alive in the log for the cyclic GC to walk
    as young survivors and then as old ones; bytes are not tracked by the GC."""
    read: Callable[[dict[str, Any]], Conversation]
    """The provider's request body -> Conversation (what the brain was given)."""
    at: float
    """Wall-clock time (time.time()) the request arrived."""
    arrived: float = 0.0
    """time.monotonic() it arrived: the time to first token counts from here, so the emulator's own work
    (brain, rendering) is inside the TTFT as the real service's is, not added on top of it."""
    reply: Reply | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    status: Status = "pending"
    """ok | cancelled (client went away mid-stream) | dropped (fault) | error (brain raised, or an
    in-stream error event was sent)."""

    @property
    def body(self) -> dict[str, Any]:
        """The request's JSON body (parsed again on every access)."""
        return cast(dict[str, Any], json.loads(self.raw))

    @property
    def conversation(self) -> Conversation:
        """The request as the brain saw it (built again from the body on every access)."""
        return self.read(self.body)


@dataclass
class Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Frame:
    """One SSE event and how many output tokens it carries (its pacing weight)."""

    data: bytes
    tokens: int = 0
    first: bool = False
    """Send no earlier than the time to first token even if it carries no token."""


def random_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


class LLMEmulator:
    """Brain, timing, faults, request log and usage of one emulated LLM provider."""

    tool_id_prefix = "call_"
    to_conversation: Callable[[dict[str, Any]], Conversation]
    """The provider's request body, normalised for the brain: each provider's emulator sets it."""

    def __init__(
        self, brain: Brain, *, ttft_s: float = 0.25, tokens_per_s: float = 60.0, api_key: str | None = None,
    ) -> None:
        self.brain = brain
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.api_key = api_key
        """Required credential; None accepts any non-empty key."""
        self.faults = Faults()
        self.drop_after_tokens: int | None = None
        """Cut every stream (abruptly, no terminating event) once this many output tokens were sent."""
        self.error_after_tokens: int | None = None
        """Send the provider's in-stream error event (e.g. Anthropic overloaded_error) once this many
        output tokens were sent, then end the stream."""
        self.requests: list[RecordedRequest] = []
        self.usage = Usage()

    def key_ok(self, key: str | None) -> bool:
        return bool(key) and (self.api_key is None or key == self.api_key)

    async def decide(self, endpoint: str, raw: bytes, conv: Conversation) -> RecordedRequest:
        """Log the request (``raw``, its body; ``conv``, that body's ``to_conversation``) and ask the brain
        (whatever it raises propagates); fill in tool call ids."""
        record = RecordedRequest(endpoint=endpoint, raw=raw, read=self.to_conversation, at=time.time(),
                                 arrived=time.monotonic())
        record.input_tokens = estimate_tokens(conv.prompt_chars())
        self.requests.append(record)
        self.usage.requests += 1
        self.usage.input_tokens += record.input_tokens
        try:
            result = self.brain(conv)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            record.status = "error"
            raise
        reply = as_reply(result)
        for call in reply.tool_calls:
            call.id = call.id or random_id(self.tool_id_prefix)
        record.reply = reply
        return record

    def finish(self, record: RecordedRequest, output_tokens: int, status: Status) -> None:
        record.output_tokens = output_tokens
        record.status = status
        self.usage.output_tokens += output_tokens

    async def generation_time(self, tokens: int) -> None:
        """Wait as long as generating ``tokens`` would take (non-streaming answers)."""
        await asyncio.sleep(self.ttft_s + max(0, tokens - 1) / self.tokens_per_s)


class PacedStream(Response):
    """An SSE response sending ``frames`` at the emulator's pace.

    Watches for the client going away (the product cancels a reply on barge-in) and stops generating
    then; honours ``faults.stall`` (pause) and ``faults.drop_ws_after_s`` / ``drop_after_tokens``
    (close the connection without finishing the chunked body, as a network failure would)."""

    def __init__(self, emu: LLMEmulator, record: RecordedRequest, frames: Sequence[Frame],
                 headers: dict[str, str] | None = None, error: Frame | None = None) -> None:
        super().__init__(status_code=200, headers=headers, media_type="text/event-stream")
        self.emu, self.record, self.frames, self.error = emu, record, frames, error
        # Starlette adds content-length: 0 for an empty body; a stream must go out chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"cache-control", b"no-cache"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        watcher = asyncio.create_task(self._watch_disconnect(receive, gone))
        try:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(start)
            status, sent = await self._send_frames(send, gone)
            if status == "error" and self.error is not None:
                await send({"type": "http.response.body", "body": self.error.data, "more_body": True})
            if status in ("ok", "error"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.emu.finish(self.record, sent, status)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    @staticmethod
    async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    async def _send_frames(self, send: Send, gone: asyncio.Event) -> tuple[Status, int]:
        emu, loop = self.emu, asyncio.get_running_loop()
        start = loop.time()
        since_arrival = time.monotonic() - self.record.arrived if self.record.arrived else 0.0
        first_due = start - since_arrival + emu.ttft_s
        sent, tick = 0, 0.0
        for frame in self.frames:
            if frame.tokens or frame.first:
                # Each token is due at TTFT + k/rate; a frame is due when its last token is.
                due = first_due + max(0, sent + frame.tokens - 1) / emu.tokens_per_s
                while (wait := due - loop.time()) > 0 or emu.faults.stall:
                    if gone.is_set():
                        return "cancelled", sent
                    await asyncio.sleep(min(max(wait, tick), 0.02) if wait > 0 else 0.02)
            if gone.is_set():
                return "cancelled", sent
            drop_s = emu.faults.drop_ws_after_s
            if drop_s is not None and loop.time() - start >= drop_s:
                return "dropped", sent
            await send({"type": "http.response.body", "body": frame.data, "more_body": True})
            sent, tick = sent + frame.tokens, TIMER_TICK_S
            if emu.drop_after_tokens is not None and sent >= emu.drop_after_tokens:
                return "dropped", sent
            if emu.error_after_tokens is not None and sent >= emu.error_after_tokens:
                return "error", sent
        return "ok", sent


@dataclass
class Pieces:
    """A reply cut into streamable pieces: text tokens, and per tool call its JSON argument fragments."""

    text: list[str] = field(default_factory=list)
    tools: list[list[str]] = field(default_factory=list)
    truncated: bool = False

    @property
    def tokens(self) -> int:
        return len(self.text) + sum(len(t) for t in self.tools)

    @property
    def output_tokens(self) -> int:
        """What the reply is billed as: one token per text piece, per argument fragment, per tool name."""
        return self.tokens + len(self.tools)


def cut(reply: Reply, max_tokens: int | None) -> Pieces:
    """Tokenise ``reply``; past ``max_tokens`` the text is cut and tool calls dropped, as a length stop."""
    tools = [split_tokens(json.dumps(c.arguments)) for c in reply.tool_calls]
    pieces = Pieces(split_tokens(reply.text), tools)
    if max_tokens is not None and pieces.tokens + len(pieces.tools) > max_tokens:
        return Pieces(pieces.text[:max_tokens], [], truncated=True)
    return pieces
