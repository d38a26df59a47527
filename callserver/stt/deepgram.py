"""Deepgram live transcription (``/v1/listen``) through deepgram-sdk 7.x's async WebSocket client.

Followed developers.deepgram.com: "Live Audio" reference (query options, ``Results``, ``SpeechStarted``,
``UtteranceEnd``), "Endpointing", "Utterance End" (needs ``interim_results``), "Audio Keep Alive" (the
server closes a socket after ~10 s with neither audio nor ``KeepAlive``) and "Close Stream". Twilio's
mu-law 8 kHz goes through untouched (``encoding=mulaw&sample_rate=8000``).

Reconnect: the socket may drop mid-call. Audio not yet covered by a final result is kept (bounded) and
sent again on the new socket, so the callee's turn in progress is transcribed in full; ``push`` never
blocks, the audio just waits in a queue while the socket reconnects.

Sends: every frame goes out as it arrives (one WebSocket message, one socket write each: at 100 calls
the biggest single cost of the call server's media path), except in a long silence. Once the callee has
been quiet for longer than endpointing and ``utterance_end_ms`` (so those events are not delayed), quiet
frames are sent 200 ms at a time; the first frame with sound in it goes out at once with them, so a
barge-in is heard as early as before. Deepgram gets the same audio, in 20-200 ms messages (it takes any
size). Shape after livekit-agents'
deepgram plugin (``SpeechStream._run``: send, receive and keepalive inside one connection scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from loguru import logger

from callserver.audio import decode
from callserver.stt.base import SpeechStarted, SttEvent, Transcript, UtteranceEnd
from callserver.stt.deepgram_socket import connect_without_deflate, media_sender, raw_websocket, tls_context

BYTES_PER_S = 8000
MAX_REPLAY_S = 30.0
"""Keep at most this much unconfirmed audio for a resend (a long monologue without finals)."""
MAX_REPLAY_BYTES = int(MAX_REPLAY_S * BYTES_PER_S)
QUIET_BATCH_BYTES = 1600
"""200 ms: how much quiet audio goes in one send once the callee has been quiet a while."""
QUIET_PEAK = 500
"""A frame whose samples all stay below this (of 32767) is quiet: line noise sits far below, speech and
music peak far above."""
_SOUND = bytes(int(abs(int(v)) >= QUIET_PEAK) for v in decode(bytes(range(256))))
"""mu-law byte -> 1 if its sample reaches QUIET_PEAK: ``b"\\x01" in frame.translate(_SOUND)`` in C."""


def is_quiet(frame: bytes) -> bool:
    return b"\x01" not in frame.translate(_SOUND)


class DeepgramSTT:
    """Factory of live streams with one client (and its settings) per process."""

    def __init__(self, *, api_key: str, base_url: str, model: str = "nova-3", language: str = "en-US",
                 endpointing_ms: int = 300, utterance_end_ms: int = 1000, keepalive_s: float = 5.0,
                 max_reconnects: int = 5) -> None:
        ws_url = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        env = DeepgramClientEnvironment(base=base_url, production=ws_url, agent=ws_url, agent_rest=base_url)
        self.client = AsyncDeepgramClient(api_key=api_key or "unset", environment=env)
        connect_without_deflate()
        if ws_url.startswith("wss://"):
            tls_context()  # loaded now, at start-up, not inside the first call
        self.options: dict[str, Any] = {
            "model": model, "language": language, "encoding": "mulaw", "sample_rate": "8000",
            "channels": "1", "interim_results": "true", "endpointing": str(endpointing_ms),
            "utterance_end_ms": str(utterance_end_ms), "vad_events": "true", "smart_format": "true",
            "punctuate": "true",
        }
        self.keepalive_s = keepalive_s
        self.max_reconnects = max_reconnects
        self.quiet_after_bytes = (max(endpointing_ms, utterance_end_ms) + 500) * BYTES_PER_S // 1000
        """Quiet audio after which frames are grouped: Deepgram has ended the utterance by then."""

    def stream(self) -> DeepgramSttStream:
        return DeepgramSttStream(self)


class DeepgramSttStream:
    def __init__(self, owner: DeepgramSTT) -> None:
        self._owner = owner
        self._pending = bytearray()
        """Audio pushed but not sent yet; the sender takes all of it at once (one send, however much)."""
        self._due = False
        """The pending audio is due (not merely queued: quiet frames wait for a batch)."""
        self._waiter: asyncio.Future[None] | None = None
        """What the idle sender awaits. A bare future, not an ``asyncio.Event``: it is set and awaited for
        every 20 ms frame of every call, and ``Event.wait`` looks the running loop up each time (a
        ``getpid`` system call on Python 3.11) on top of its own list of waiters."""
        self._keepalive_due = False
        self._last_send = 0.0
        self._loop_time: Callable[[], float] = time.monotonic  # the running loop's clock, once sending
        self._direct: Callable[[bytes], Coroutine[Any, Any, None]] | None = None
        """The socket's send while the sender task runs: ``push`` sends with it on its own stack."""
        self._inflight: asyncio.Task[None] | None = None
        """A send that ``push`` started and the socket could not finish at once; later audio waits."""
        self._quiet_bytes = 0
        """Quiet audio since the last frame with sound in it."""
        self._unconfirmed = bytearray()
        self._base = 0
        """Offset of ``_unconfirmed[0]`` in the current socket's audio (bytes)."""
        self._sent = 0
        self._events: asyncio.Queue[SttEvent | None] = asyncio.Queue()
        self._closing = False
        self.connections = 0
        self.reconnects = 0
        self.bytes_pushed = 0
        """Audio received from the call (its clock: Twilio sends frames for as long as the call is up)."""
        self.bytes_sent = 0
        """Audio sent to Deepgram, resends included: what Deepgram bills."""

    def push(self, audio: bytes) -> None:
        if self._closing:
            return
        size = len(audio)
        self.bytes_pushed += size
        unconfirmed = self._unconfirmed
        unconfirmed += audio
        overflow = len(unconfirmed) - MAX_REPLAY_BYTES
        if overflow > 0:
            del unconfirmed[:overflow]
            self._base += overflow
        self._pending += audio
        if is_quiet(audio):
            self._quiet_bytes += size
            if (self._quiet_bytes > self._owner.quiet_after_bytes
                    and len(self._pending) < QUIET_BATCH_BYTES):
                return  # a long silence: this frame goes with the next ones
        else:
            self._quiet_bytes = 0
        if (self._waiter is not None and self._direct is not None and self._inflight is None
                and len(self._pending) == size):
            self._send_now(audio)
        else:
            self._wake()

    def _send_now(self, audio: bytes) -> None:
        """Send one frame from ``push`` itself while the sender is idle with nothing queued ahead of it:
        websockets' ``send`` writes the frame without suspending while the socket is open and its
        buffer not full, so it is run to completion here rather than waking the sender task for every
        20 ms frame of every call (a future, a loop callback and a task step per frame). Should the send
        suspend, a task finishes it, in order, as the sender would have."""
        assert self._direct is not None
        coro = self._direct(audio)
        try:
            blocked = coro.send(None)
        except StopIteration:
            self._pending.clear()
            self._sent_ok(len(audio))
            return
        except Exception:  # e.g. closed: the frame stays queued, the sender meets the error and reports it
            self._wake()
            return
        self._pending.clear()
        self._inflight = asyncio.get_running_loop().create_task(self._finish(coro, blocked, len(audio)))

    async def _finish(self, coro: Coroutine[Any, Any, None], blocked: Any, size: int) -> None:
        """What a Task does with a coroutine that suspended on ``blocked``: wait, resume, until done."""
        try:
            while True:
                if blocked is None:  # a bare yield (asyncio.sleep(0))
                    await asyncio.sleep(0)
                else:
                    blocked._asyncio_future_blocking = False
                    await asyncio.wait((blocked,))  # the coroutine reads its result or exception
                blocked = coro.send(None)
        except StopIteration:
            self._inflight = None
            self._sent_ok(size)
        except asyncio.CancelledError:
            coro.close()
            raise
        except Exception:
            self._wake()  # the sender awaits this task and so ends the connection with the error
            raise

    def _sent_ok(self, size: int) -> None:
        self._sent += size
        self.bytes_sent += size
        self._last_send = self._loop_time()

    def _wake(self) -> None:
        self._due = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # cancelled with the sender
                waiter.set_result(None)

    def close(self) -> None:
        self._closing = True
        self._wake()

    async def events(self) -> AsyncIterator[SttEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def run(self) -> None:
        """Hold a socket open until ``close``; reconnect (with backoff) when it drops."""
        failures = 0
        try:
            while not self._closing:
                before = self.connections
                try:
                    await self._connection()
                    failures = 0
                except Exception as exc:  # handshake refused, network error, protocol error
                    # A drop after a good connection reconnects at once; refusals back off.
                    failures = 1 if self.connections > before else failures + 1
                    if failures > self._owner.max_reconnects:
                        logger.error("deepgram STT gave up after {} failures: {!r}", failures, exc)
                        raise
                    logger.warning("deepgram STT socket failed ({!r}); reconnecting", exc)
                    if failures > 1:
                        await asyncio.sleep(min(2.0, 0.05 * 2 ** failures))
                if not self._closing:
                    self.reconnects += 1
        finally:
            self._events.put_nowait(None)

    async def _connection(self) -> None:
        async with self._owner.client.listen.v1.connect(**self._owner.options) as socket:
            self.connections += 1
            # Everything queued is also in the unconfirmed buffer: send that once, from its start.
            self._pending.clear()
            self._sent, self._base = 0, 0
            if self._unconfirmed:
                await media_sender(socket)(bytes(self._unconfirmed))
                self._sent = len(self._unconfirmed)
                self.bytes_sent += self._sent
            sender = asyncio.create_task(self._send(socket))
            try:
                await self._receive(socket)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _send(self, socket: Any) -> None:
        # Runs for every 20 ms frame of every call: one bare future per wake-up, no timer. KeepAlive is
        # a timer that fires once per keepalive_s and only asks for a KeepAlive when nothing was sent
        # for that long (no audio flowing, e.g. between two Twilio streams).
        loop = asyncio.get_running_loop()
        send_media = media_sender(socket)
        keepalive_s = self._owner.keepalive_s
        self._loop_time = loop.time
        self._last_send = loop.time()

        def keepalive_check() -> None:
            nonlocal timer
            due = self._last_send + keepalive_s
            if loop.time() + 0.001 >= due:  # call_at may run a hair (clock resolution) early
                self._keepalive_due = True
                self._wake()
            else:
                timer = loop.call_at(due, keepalive_check)

        timer = loop.call_at(self._last_send + keepalive_s, keepalive_check)
        self._direct = send_media
        try:
            while True:
                if not self._due and not self._closing:
                    self._waiter = waiter = loop.create_future()
                    await waiter
                self._due = False
                if self._inflight is not None:
                    await self._inflight  # a send push started: first, and its error is ours
                    self._inflight = None
                if self._pending:
                    data = bytes(self._pending)
                    self._pending.clear()
                    await send_media(data)
                    self._sent_ok(len(data))
                elif self._closing:
                    # Flush what was said so far, then the server closes the socket.
                    await socket.send_close_stream()
                    return
                elif self._keepalive_due:
                    await socket.send_keep_alive()
                    self._last_send = loop.time()
                if self._keepalive_due:
                    self._keepalive_due = False
                    timer = loop.call_at(self._last_send + keepalive_s, keepalive_check)
        finally:
            timer.cancel()
            self._waiter = self._direct = None
            if self._inflight is not None:
                self._inflight.cancel()
                self._inflight = None

    async def _receive(self, socket: Any) -> None:
        ws = raw_websocket(socket)
        if ws is None:  # an SDK without the attribute: its typed messages, slower but the same events
            async for message in socket:
                self._on_typed(message)
        else:
            async for message in ws:
                if isinstance(message, str):  # the listen API sends JSON text only
                    self._on_text(message)
        if not self._closing:
            raise ConnectionError("deepgram closed the listen socket")

    def _on_text(self, text: str) -> None:
        """One listen message, parsed with ``json.loads`` reading only the fields we use: the SDK's
        ``construct_type`` walks its union of every message model (~0.1 ms per message here)."""
        try:
            message = json.loads(text)
        except ValueError:
            logger.warning("deepgram STT: skipping a message that is not JSON: {!r}", text[:200])
            return
        if not isinstance(message, dict):
            logger.warning("deepgram STT: skipping an unexpected message: {!r}", text[:200])
            return
        kind = message.get("type")
        if kind == "Results":
            channel = message.get("channel")
            alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
            first = alternatives[0] if alternatives else None
            text_ = (first.get("transcript") if isinstance(first, dict) else None) or ""
            self._on_result(text_, bool(message.get("is_final")), bool(message.get("speech_final")),
                            float(message.get("start") or 0.0), float(message.get("duration") or 0.0))
        elif kind == "SpeechStarted":
            self._events.put_nowait(SpeechStarted(float(message.get("timestamp") or 0.0)))
        elif kind == "UtteranceEnd":
            self._events.put_nowait(UtteranceEnd(float(message.get("last_word_end") or 0.0)))
        elif kind == "Error":
            logger.warning("deepgram STT error: {}", message)

    def _on_typed(self, message: Any) -> None:
        """The same, from the SDK's parsed models (the fallback path)."""
        kind = getattr(message, "type", None)
        if kind == "Results":
            alternatives = message.channel.alternatives
            self._on_result(alternatives[0].transcript if alternatives else "", bool(message.is_final),
                            bool(message.speech_final), float(message.start or 0.0),
                            float(message.duration or 0.0))
        elif kind == "SpeechStarted":
            self._events.put_nowait(SpeechStarted(float(message.timestamp or 0.0)))
        elif kind == "UtteranceEnd":
            self._events.put_nowait(UtteranceEnd(float(message.last_word_end or 0.0)))
        elif kind == "Error":
            logger.warning("deepgram STT error: {}", message)

    def _on_result(self, text: str, is_final: bool, speech_final: bool, start: float,
                   duration: float) -> None:
        if is_final:
            # This audio is transcribed for good: a resend after a drop starts after it.
            covered = int((start + duration) * BYTES_PER_S) - self._base
            if covered > 0:
                del self._unconfirmed[:covered]
                self._base += covered
        if text or is_final:
            self._events.put_nowait(Transcript(text, is_final, speech_final, start, start + duration))
