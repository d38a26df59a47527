"""Twilio Media Streams (bidirectional ``<Connect><Stream>``): every wire detail in this one file.

Followed twilio.com/docs/voice/media-streams/websocket-messages: JSON text frames; from Twilio
``connected`` -> ``start`` -> ``media`` / ``dtmf`` / ``mark`` ... -> ``stop``; to Twilio only ``media``,
``mark`` and ``clear`` (anything else is protocol error 31924, and there is no outbound DTMF message).
Every message we send carries the ``streamSid``. A mark is echoed once the audio queued before it has
played, and at once for every pending mark when we send ``clear``.

A listen-only fork (``<Start><Stream track="both_tracks">``, twilio.com/docs/voice/twiml/stream) lists its
``tracks`` in ``start`` and tags each ``media`` with ``track`` "inbound" or "outbound"; media of a track
the stream did not announce is dropped, so a bidirectional stream only ever yields the callee's audio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from loguru import logger
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


class StreamProtocolError(Exception):
    """The peer did not open the stream with ``connected`` + ``start``."""


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes
    """mu-law 8 kHz, no header."""
    timestamp_ms: int
    """Milliseconds since the stream started."""
    track: str = "inbound"
    """"inbound" (the call's party) or, on a fork with both tracks, "outbound" (what is played to them)."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEcho:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Inbound = Media | Dtmf | MarkEcho | Stop
_MEDIA_EVENTS = ('{"event":"media"', '{"event": "media"')
"""How a ``media`` frame starts: Twilio's compact JSON, or with json.dumps' default separators."""


def _fast_media(raw: str) -> Media | None:
    """A ``media`` frame without a full JSON parse (50 a second per call); None: take the slow path.

    The frame's layout is fixed: a flat ``media`` object of string fields (track, chunk, timestamp,
    payload) plus sequenceNumber and streamSid, plain ASCII values without escapes. Each field is found
    by its key; anything unexpected (an escape, no payload, bad base64) goes to ``json.loads``, which then
    accepts or rejects the frame as before."""
    payload = _string_field(raw, '"payload"')
    if payload is None or not raw.endswith("}"):
        return None
    track = _string_field(raw, '"track"')
    timestamp = _string_field(raw, '"timestamp"')
    if timestamp is not None and not timestamp.isdigit():
        return None
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error:
        return None
    return Media(audio, int(timestamp) if timestamp else 0, "inbound" if track is None else track)


def _string_field(raw: str, key: str) -> str | None:
    """The string value after the first ``key`` (quoted) in ``raw``; None when absent, not a plain
    string, or escaped."""
    at = raw.find(key)
    if at < 0:
        return None
    start = at + len(key)
    if raw.startswith(':"', start):
        start += 2
    elif raw.startswith(': "', start):
        start += 3
    else:
        return None
    end = raw.find('"', start)
    if end < 0:
        return None
    value = raw[start:end]
    return None if "\\" in value else value


async def _receive_json(ws: WebSocket) -> dict[str, Any]:
    data = json.loads(await ws.receive_text())
    if not isinstance(data, dict):
        raise StreamProtocolError("expected a JSON object")
    return data


async def read_start(ws: WebSocket, timeout_s: float = 10.0) -> dict[str, Any]:
    """Read ``connected`` (optional, it has no streamSid) then ``start``; return the start message.

    Raises StreamProtocolError on garbage, TimeoutError when Twilio never starts the stream."""
    async with asyncio.timeout(timeout_s):
        for _ in range(2):
            try:
                message = await _receive_json(ws)
            except (ValueError, KeyError) as exc:
                raise StreamProtocolError(f"malformed frame before start: {exc}") from exc
            event = message.get("event")
            if event == "start" and isinstance(message.get("start"), dict):
                return message
            if event != "connected":
                raise StreamProtocolError(f"unexpected {event!r} before start")
    raise StreamProtocolError("no start message after connected")


class MediaStream:
    """One accepted Twilio stream: read typed inbound events, send audio, marks and clear."""

    def __init__(self, ws: WebSocket, start: dict[str, Any]) -> None:
        body = start.get("start") or {}
        self.ws = ws
        self.stream_sid: str = str(start.get("streamSid") or body.get("streamSid") or "")
        self.call_sid: str = str(body.get("callSid") or "")
        self.custom_parameters: dict[str, str] = {
            str(k): str(v) for k, v in (body.get("customParameters") or {}).items()
        }
        self.tracks: list[str] = [str(t) for t in body.get("tracks") or ["inbound"]]
        self.closed = False
        self._log = logger.bind(stream_sid=self.stream_sid)
        # Outbound media is the hottest message (every 40 ms of agent speech): its JSON is this prefix,
        # the base64 payload (which never needs escaping) and a fixed suffix, not a json.dumps per chunk.
        sid = json.dumps(self.stream_sid)
        self._media_prefix = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'

    async def events(self) -> AsyncIterator[Inbound]:
        """Inbound events until ``stop`` or the socket closes; malformed frames are logged and skipped."""
        while not self.closed:
            try:
                raw = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                break
            event = self._parse(raw)
            if event is None:
                continue
            yield event
            if isinstance(event, Stop):
                break
        self.closed = True

    def _parse(self, raw: str) -> Inbound | None:
        if raw.startswith(_MEDIA_EVENTS):
            media = _fast_media(raw)
            if media is not None:
                return media if media.track in self.tracks else None
        try:
            message = json.loads(raw)
            kind = message["event"]
            if kind == "media":
                media = message["media"]
                track = str(media.get("track", "inbound"))
                if track not in self.tracks:
                    return None
                payload = base64.b64decode(media["payload"], validate=True)
                return Media(payload, int(media.get("timestamp", 0)), track)
            if kind == "dtmf":
                return Dtmf(str(message["dtmf"]["digit"]))
            if kind == "mark":
                return MarkEcho(str(message["mark"]["name"]))
            if kind == "stop":
                return Stop()
            self._log.debug("ignoring Twilio event {}", kind)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            self._log.warning("skipping malformed Media Streams frame: {}", exc)
        return None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message, separators=(",", ":")))

    async def _send_text(self, text: str) -> None:
        if self.closed or self.ws.client_state != WebSocketState.CONNECTED:
            self.closed = True
            return
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The call ended or its TwiML was replaced: the stream is gone, nothing more to play.
            self.closed = True

    async def send_audio(self, mulaw: bytes) -> None:
        await self._send_text(self._media_prefix + base64.b64encode(mulaw).decode("ascii") + '"}}')

    async def send_mark(self, name: str) -> None:
        await self._send_text(self._mark_prefix + json.dumps(name) + "}}")

    async def send_clear(self) -> None:
        await self._send({"event": "clear", "streamSid": self.stream_sid})
