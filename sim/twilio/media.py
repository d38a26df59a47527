"""The Twilio side of a Media Stream: a WebSocket client, bidirectional (``<Connect><Stream>``) or a
listen-only fork (``<Start><Stream>``, unidirectional).

Follows twilio.com/docs/voice/media-streams/websocket-messages and twilio.com/docs/voice/twiml/stream:
`connected` {protocol, version}; `start` (sequenceNumber "1") with accountSid, streamSid, callSid, tracks,
customParameters and mediaFormat; then `media` every 20 ms (string sequenceNumber / chunk / timestamp,
base64 mu-law payload), `dtmf` when the callee keys a digit, `mark` echoes, and `stop` when the call ends
or its TwiML is replaced. From the server only `media`, `mark` and `clear` are valid; anything else is
logged as error 31924 (Stream - WebSocket - Protocol Error). Connection failures map to 31901 (timeout),
31902 (refused) and 31920 (handshake: HTTP status other than 101).

A fork (twilio.com/docs/voice/media-streams, "unidirectional"; twilio.com/docs/voice/twiml/stream, `track`)
lists its tracks in `start` ("inbound", "outbound" or both) and sends each 20 ms frame once per track with
`media.track` "inbound" (what the call's party says) or "outbound" (what is played to them: on a
conference leg, the other participants); it carries no `dtmf`, and the server cannot send anything back.
It lives until the call ends (a TwiML replacement does not stop it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from sim.audio import SILENT_FRAME
from sim.faults import Faults
from sim.twilio.calllog import CallLog
from sim.twilio.line import Line
from sim.twilio.mouth import FrameOut
from sim.twilio.resources import new_sid
from sim.twilio.twiml import TRACKS, Stream

logger = logging.getLogger(__name__)
_MEDIA_JSON = ('{"event": "media", "sequenceNumber": "%d", "media": {"track": "%s", "chunk": "%d", '
               '"timestamp": "%d", "payload": "%s"}, "streamSid": "%s"}')
_SILENT_PAYLOAD = base64.b64encode(SILENT_FRAME).decode()


class StreamFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class MediaStream:
    def __init__(self, spec: Stream, line: Line, log: CallLog, account_sid: str, call_sid: str,
                 faults: Faults | None = None, *, unidirectional: bool = False) -> None:
        self.spec = spec
        self.unidirectional = unidirectional
        self.tracks = TRACKS[spec.track] if unidirectional else ["inbound"]
        self.line = line
        self.log = log
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.sid = new_sid("MZ")
        self.faults = faults or Faults()
        self._seq = 0
        self._chunks = {"inbound": 0, "outbound": 0}
        self._close_reason = "closed"
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._sender_busy = False
        self._closing = asyncio.Event()
        self.finished = asyncio.Event()
        self.record: dict[str, Any] = {"stream_sid": self.sid, "url": spec.url, "name": spec.name,
                                       "parameters": dict(spec.parameters), "started_ms": None,
                                       "ended_ms": None, "end_reason": None, "media_in": 0, "media_out": 0,
                                       "tracks": list(self.tracks), "unidirectional": unidirectional}

    async def run(self) -> str:
        """Connect and stream until the server hangs up or ``close`` is called; return why it ended."""
        try:
            return await self._run()
        finally:
            self.finished.set()

    async def _run(self) -> str:
        try:
            ws = await connect(self.spec.url, open_timeout=10, ping_interval=None, max_size=None,
                               compression=None, user_agent_header="Twilio.TmeWs/1.0")
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise StreamFailed(31920, f"Stream - WebSocket - Handshake Error: HTTP {status}") from exc
        except InvalidHandshake as exc:
            raise StreamFailed(31920, f"Stream - WebSocket - Handshake Error: {exc}") from exc
        except TimeoutError as exc:
            raise StreamFailed(31901, "Stream - WebSocket - Connection Timeout") from exc
        except OSError as exc:
            raise StreamFailed(31902, f"Stream - WebSocket - Connection Refused: {exc}") from exc
        self._ws = ws
        self.record["started_ms"] = self.line.now_ms()
        self.log.streams.append(self.record)
        reason = "closed by server"
        async with ws:
            if self.faults.delay_s:
                await asyncio.sleep(self.faults.delay_s)
            self._emit({"event": "connected", "protocol": "Call", "version": "1.0.0"}, numbered=False)
            self._emit({"event": "start", "start": {
                "accountSid": self.account_sid, "streamSid": self.sid, "callSid": self.call_sid,
                "tracks": list(self.tracks), "customParameters": dict(self.spec.parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
            if self.unidirectional:
                self.line.forks.append(self)
            else:
                self.line.sink = self
            tasks = [asyncio.create_task(self._send_loop(ws)), asyncio.create_task(self._receive_loop(ws)),
                     asyncio.create_task(self._closing.wait())]
            if self.faults.drop_ws_after_s is not None:
                tasks.append(asyncio.create_task(asyncio.sleep(self.faults.drop_ws_after_s)))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if tasks[2] in done:
                    reason = self._close_reason
                    await self._send_stop(ws, tasks[0])
                elif len(tasks) > 3 and tasks[3] in done:
                    reason = "dropped (fault)"
                    await ws.close(1011, "emulated drop")
            finally:
                if self.line.sink is self:
                    self.line.sink = None
                if self in self.line.forks:
                    self.line.forks.remove(self)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        self.record["ended_ms"] = self.line.now_ms()
        self.record["end_reason"] = reason
        return reason

    def close(self, reason: str) -> None:
        """End the stream with a `stop` message (call over, or its TwiML replaced)."""
        self._close_reason = reason
        self._closing.set()

    # --- to the server ---------------------------------------------------------------------------
    def _emit(self, message: dict[str, Any], numbered: bool = True) -> None:
        if numbered:
            self._seq += 1
            message = {"event": message.pop("event"), "sequenceNumber": str(self._seq), **message,
                       "streamSid": self.sid}
        text = json.dumps(message)
        if message["event"] != "media":
            self.log.sent_text.append((self.line.now_ms(), text))
        self._send(text)

    def on_inbound(self, frame: FrameOut) -> None:
        """One 20 ms frame of the callee (called by the line's tick; must not block)."""
        if "inbound" in self.tracks:
            self._media("inbound", frame.audio)
        if self.unidirectional:
            return  # no dtmf messages on a fork
        for seg in frame.finished:
            if seg.kind == "digit":
                self._emit({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": seg.label}})

    def on_outbound(self, audio: bytes) -> None:
        """One 20 ms frame played to the callee (forks only)."""
        if "outbound" in self.tracks:
            self._media("outbound", audio)

    def _media(self, track: str, audio: bytes) -> None:
        # 50 a second per call: formatted from a template, byte for byte what json.dumps gives for
        # {"event", "sequenceNumber", "media": {"track", "chunk", "timestamp", "payload"}, "streamSid"}.
        self._chunks[track] += 1
        chunk = self._chunks[track]
        self.record["media_out"] += 1
        self._seq += 1
        payload = _SILENT_PAYLOAD if audio == SILENT_FRAME else base64.b64encode(audio).decode()
        self._send(_MEDIA_JSON % (self._seq, track, chunk, (chunk - 1) * 20, payload, self.sid))

    def _send(self, message: str) -> None:
        """Write ``message`` now when nothing is queued ahead of it and the socket takes it without
        waiting, else queue it for the sender task (which keeps the order and waits on flow control).

        Writing from the tick saves, per frame and call, a queue hand-off, a task wake-up and
        ``Connection.send``'s async context manager (together ~15% of the phone emulator's CPU at 50
        calls, py-spy): the same text frame through the same websockets protocol object, a little sooner.
        The checks are the happy path of ``Connection.send_context``: connection open, no fragmented
        message in progress, transport not paused by flow control nor closing; anything else (or a
        websockets version without these attributes) takes the queue.
        """
        ws = self._ws
        if (ws is not None and not self._sender_busy and self._out.empty()
                and ws.protocol.state is State.OPEN and getattr(ws, "send_in_progress", True) is None
                and getattr(ws, "paused", True) is False and not ws.transport.is_closing()):
            try:
                ws.protocol.send_text(message.encode())
                for data in ws.protocol.data_to_send():
                    ws.transport.write(data)  # an OPEN connection only produces frames, never the EOF marker
            except Exception:  # a tick must not fail the call: end the connection, as send_context does
                logger.warning("media stream %s: write failed, aborting", self.sid, exc_info=True)
                ws.transport.abort()
            return
        self._out.put_nowait(message)

    def _echo_mark(self, name: str) -> None:
        if not self._closing.is_set():
            self._emit({"event": "mark", "mark": {"name": name}})

    async def _send_stop(self, ws: ClientConnection, sender: asyncio.Task[None]) -> None:
        # Off the line first: a tick during the drain below must not queue media behind the `stop`.
        if self.line.sink is self:
            self.line.sink = None
        if self in self.line.forks:
            self.line.forks.remove(self)
        self._emit({"event": "stop", "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        # The one sender sends what is queued, in order, `stop` last, then ends at the None.
        self._out.put_nowait(None)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await asyncio.wait_for(asyncio.shield(sender), 2)
            await asyncio.wait_for(ws.close(), 2)

    async def _send_loop(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (message := await self._out.get()) is not None:
                self._sender_busy = True  # what _send writes directly must not overtake this message
                try:
                    await ws.send(message)
                finally:
                    self._sender_busy = False

    # --- from the server -------------------------------------------------------------------------
    async def _receive_loop(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.handle(raw)

    def handle(self, raw: str | bytes) -> None:
        now = self.line.now_ms()
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            self._protocol_error(now, f"unparseable message: {str(raw)[:80]!r}")
            return
        if event != "media":  # media are counted (record["media_in"]); thousands per call are not kept
            self.log.received_text.append((now, raw))
        if self.unidirectional:
            self._protocol_error(now, f"{event!r} sent on a unidirectional stream")
            return
        try:
            if event == "media":
                audio = base64.b64decode(message["media"]["payload"], validate=True)
                self.record["media_in"] += 1
                self.line.agent_media(audio)
            elif event == "mark":
                self.line.agent_mark(str(message["mark"]["name"]), self._echo_mark)
            elif event == "clear":
                self.line.agent_clear()
            else:
                self._protocol_error(now, f"unsupported event {event!r}")
        except (KeyError, TypeError, binascii.Error) as exc:
            self._protocol_error(now, f"malformed {event!r} message: {exc!r}")

    def _protocol_error(self, now: float, detail: str) -> None:
        self.log.errors.append((now, 31924, f"Stream - WebSocket - Protocol Error: {detail}"))
