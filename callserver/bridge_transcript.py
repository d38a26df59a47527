"""The transcript of a bridged call ("hold for me" with recording on): the agent has stepped out, but a
listen-only fork of the callee's leg still reaches us, and both sides are written down.

Twilio's unidirectional stream (`<Start><Stream track="both_tracks">`, twilio.com/docs/voice/twiml/stream;
messages per twilio.com/docs/voice/media-streams/websocket-messages: `start.tracks` lists "inbound" and
"outbound", each `media` carries its `track`) sends the callee's voice as "inbound" and what the callee
hears, i.e. the conference with the owner in it, as "outbound". Each track needs its own STT stream, since
two people talk over each other: the callee's goes to the session's STT (so the session's listener logs
their lines, the call clock and STT cost go on as before) and the owner's to a second stream owned here,
whose finished turns are logged as speaker "owner". The fork can never carry audio back, and nothing
here ever asks the LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from loguru import logger

from callserver.turns import Backchannel, EndOfTurn, TurnTaker
from callserver.twilio_stream import Media, Stop

if TYPE_CHECKING:
    from callserver.session import CallSession
    from callserver.stt.base import SttStream
    from callserver.twilio_stream import MediaStream

FLUSH_S = 2.0
"""How long the owner's STT may take to return its last words once the fork ended."""


class BridgeTranscript:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.owner_stt: SttStream | None = None
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, stream: MediaStream) -> None:
        """Feed one fork until it stops (the call ended), then log the owner's last words."""
        s = self.s
        if self.owner_stt is None:
            self.owner_stt = s.providers.stt()
            s.extra_stt.append(self.owner_stt)
        stt = self.owner_stt
        self._running += 1
        self._idle.clear()
        s.log.action("bridge", stage="transcribing", tracks=stream.tracks)
        turns = TurnTaker()
        runner = asyncio.create_task(self._run_stt(stt))
        lines = asyncio.create_task(self._owner_lines(stt, turns))
        try:
            async for event in stream.events():
                if isinstance(event, Media):
                    (stt if event.track == "outbound" else s.stt).push(event.payload)
                elif isinstance(event, Stop):
                    break
        finally:
            stt.close()  # flushes: the owner's last words still arrive
            self.owner_stt = None  # a closed stream takes no more audio: a later fork opens a new one
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_S):
                    await asyncio.gather(runner, lines, return_exceptions=True)
            for task in (runner, lines):
                task.cancel()
            if turns.pending_text:
                s.log.line("owner", turns.pending_text)
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def wait_done(self, timeout_s: float = FLUSH_S + 1.0) -> None:
        """The call is over: let a fork still running log its last lines first (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()

    async def _run_stt(self, stt: SttStream) -> None:
        try:
            await stt.run()
        except Exception as exc:  # the owner's words go unwritten; the call itself is fine
            logger.bind(call_id=self.s.info.call_id).warning("owner STT failed: {!r}", exc)
            self.s.log.action("error", what="owner stt", detail=str(exc))

    async def _owner_lines(self, stt: SttStream, turns: TurnTaker) -> None:
        async for event in stt.events():
            for decision in turns.feed(event, False):
                if isinstance(decision, EndOfTurn | Backchannel):
                    self.s.log.line("owner", decision.text)
