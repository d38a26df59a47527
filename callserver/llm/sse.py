"""Server-sent events off a streamed HTTP response, for the LLM providers' raw streaming responses.

The SDKs (openai, anthropic) still make the request - auth, base URL, retries, HTTP errors mapped to
their exceptions - but their stream classes build a pydantic model per chunk through several async
generator layers (~0.25 ms a chunk, 4-5 ms of CPU per reply, on the first token's path). Here a
response's body is cut into events and each ``data`` is ``json.loads``-ed once.

Follows html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation for what
both APIs send: ``field: value`` lines (one optional space after the colon), several ``data`` lines
joined by a newline, an empty line dispatching the event, ``:`` comment lines ignored. Lines end with
LF or CRLF (neither API uses a lone CR).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    """The ``event:`` field ("" when absent: OpenAI sends data lines only)."""
    data: str


class SseDecoder:
    """Feed body bytes in any cut; get the events completed so far."""

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf + chunk
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 1:]
        out: list[SseEvent] = []
        for raw in buf[:end].split(b"\n"):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data or self._event:
                    out.append(SseEvent(self._event, "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode())
            elif name == b"event":
                self._event = value.decode()
            # "id", "retry" and ":" comments do not matter for a one-shot completion stream
        return out

