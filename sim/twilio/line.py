"""The audio path of one answered call, paced at 20 ms frames on the network clock (one ticker task
steps every line: ``sim.twilio.ticker``).

Each tick (1) finishes playing the agent frame that was in flight, so the callee hears it (speech decoder,
DTMF detector, recording) and marks behind it are echoed; (2) hands the callee's frame for the elapsed
20 ms to the attached media stream; (3) takes the next agent frame from the playout buffer. Deadlines are
absolute (start + k * 20 ms), so the pacing does not drift and a late wake-up catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from sim.audio import (
    FRAME_BYTES,
    FRAME_MS,
    SILENT_FRAME,
    DtmfDetector,
    classify_mulaw_streams,
    dtmf_tones,
    is_silence,
)
from sim.codec import SpeechDecoder, encode_speech, encode_words
from sim.twilio.calllog import CallLog, Word
from sim.twilio.clock import Clock
from sim.twilio.mouth import FrameOut, Mouth, Segment
from sim.twilio.playout import PendingMark, Playout
from sim.twilio.ticker import ticker_for
from sim.twilio.tones import ToneBatch, tone_batch_for


class StreamSink(Protocol):
    def on_inbound(self, frame: FrameOut) -> None: ...


class ForkSink(StreamSink, Protocol):
    """A listen-only `<Start><Stream>` fork: also gets every frame played to the callee."""

    def on_outbound(self, audio: bytes) -> None: ...


class Line:
    def __init__(self, clock: Clock, log: CallLog, on_callee_hangup: Callable[[], None]) -> None:
        self.clock = clock
        self.log = log
        self.playout = Playout()
        self.mouth = Mouth()
        self.decoder = SpeechDecoder()
        self.dtmf = DtmfDetector()
        self.sink: StreamSink | None = None
        self.forks: list[ForkSink] = []
        """Unidirectional streams forking this line's audio (both tracks), whatever the sink is."""
        self.digit_source = "inband"
        """Label for detected digits: "play" while the network itself plays <Play digits>."""
        self.inbound_track = bytearray()
        self.outbound_track = bytearray()
        self.start_ms = 0.0
        self.agent_last_audio_ms: float | None = None
        """End of the last non-silent agent frame the callee heard."""
        self.agent_audio_since_ms: float | None = None
        """Start of the agent's current run of non-silent frames (None while the agent is silent)."""
        self._in_flight = (b"", 0, [])  # type: tuple[bytes, int, list[PendingMark]]
        self._on_callee_hangup = on_callee_hangup
        self._tick: asyncio.Future[None] | None = None
        """Resolved at the next tick; made only when someone waits for it (most ticks nobody does)."""
        self._stopped = False
        self._callee_speaking = False
        self._callee_speech_end_ms: float | None = None
        self._interruption_ms: float | None = None
        self._ended: asyncio.Future[None] | None = None
        self._k = 0
        self._tones: ToneBatch | None = None
        self.due_ms = float("inf")
        """Network ms at which the next frame is due (see ``sim.twilio.ticker``)."""

    # --- the tick loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick (from the network's ticker) until stopped; raises what a tick raised."""
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        ticker = ticker_for(self.clock)
        self._tones = tone_batch_for(ticker)
        self.start_ms = ticker.join(self)
        self._k = 0
        self.due_ms = self.start_ms + FRAME_MS
        try:
            if not self._stopped:
                await self._ended
        finally:
            ticker.leave(self)
            self._stopped = True
            self._wake()

    def tick(self) -> None:
        """Play the frame that just ended (called by the ticker once ``due_ms`` has come)."""
        if self._stopped:
            return
        self._step(self.start_ms + self._k * FRAME_MS)
        self._k += 1
        self.due_ms += FRAME_MS

    def fail(self, exc: BaseException) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_exception(exc)

    def stop(self) -> None:
        self._stopped = True
        self.mouth.flush()
        self._wake()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _step(self, frame_start_ms: float) -> None:
        frame_end_ms = frame_start_ms + FRAME_MS
        self._commit_played(frame_start_ms, frame_end_ms)
        said = self.mouth.next_frame(frame_start_ms)
        self._note_callee(said, frame_start_ms, frame_end_ms)
        self.inbound_track += said.audio
        if self.sink is not None:
            self.sink.on_inbound(said)
        for fork in self.forks:
            fork.on_inbound(said)
        self._in_flight = self.playout.take(FRAME_BYTES)
        self._wake()

    def _commit_played(self, start_ms: float, end_ms: float) -> None:
        audio, real, marks = self._in_flight
        self._in_flight = (b"", 0, [])
        if not audio:
            audio = SILENT_FRAME
        self.outbound_track += audio
        for fork in self.forks:
            fork.on_outbound(audio)
        for word in self.decoder.feed(audio):
            self.log.heard.append(Word(word.word, self.start_ms + word.start_ms, self.start_ms + word.end_ms))
        blocks = self.dtmf.take_bytes(audio)  # None for silence after silence: no digit starts or ends there
        if blocks is not None and self._tones is not None:  # ticked by the network's ticker: with the round's
            self._tones.add(self.dtmf, blocks, self.log, end_ms, self.digit_source)
        elif blocks is not None:
            for digit in self.dtmf.feed_keys(classify_mulaw_streams([blocks])[0]):
                self.log.digits.append((end_ms, digit, self.digit_source))
        if real and not is_silence(audio):
            self.agent_last_audio_ms = end_ms
            if self.agent_audio_since_ms is None:
                self.agent_audio_since_ms = start_ms
        else:
            self.agent_audio_since_ms = None
        for mark in marks:
            self._echo(mark)

    def _note_callee(self, frame: FrameOut, start_ms: float, end_ms: float) -> None:
        for seg in frame.finished:
            if seg.kind == "word":
                self.log.said.append(Word(seg.label, seg.started_ms or start_ms, end_ms))
            elif seg.kind == "digit":
                self.log.keyed.append((end_ms, seg.label))
            if seg.done is not None and not seg.done.done():
                seg.done.set_result(None)
        speech = frame.speech and not is_silence(frame.audio)
        if speech and not self._callee_speaking:
            self._callee_speaking = True
            agent_playing = self._in_flight[1] > 0 or not self.playout.empty()
            if agent_playing and self._interruption_ms is None:
                self._interruption_ms = start_ms
        elif not speech and self._callee_speaking:
            self._callee_speaking = False
            self._callee_speech_end_ms = start_ms

    def _wake(self) -> None:
        fut, self._tick = self._tick, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    # --- the agent side (called by the media stream) --------------------------------------------
    def agent_media(self, audio: bytes) -> None:
        now = self.clock.now_ms()
        if self._callee_speech_end_ms is not None and not is_silence(audio):
            self.log.response_gaps.append((self._callee_speech_end_ms, now))
            self._callee_speech_end_ms = None
        self.playout.push_audio(audio)

    def agent_mark(self, name: str, echo: Callable[[str], None]) -> None:
        # No closure per mark: a pending mark (waiting seconds behind its audio) outlives young
        # collections, and each object it holds is walked again by every one of them.
        pending = PendingMark(name, echo, len(self.log.mark_rows))
        self.log.mark_rows.append((name, self.clock.now_ms(), None, False))
        if not self.playout.empty():
            self.playout.push_mark(pending)
        elif self._in_flight[1]:
            self._in_flight[2].append(pending)
        else:
            self._echo(pending)

    def _echo(self, mark: PendingMark, cleared: bool = False) -> None:
        if mark.record is not None:  # its index in log.mark_rows
            rows = self.log.mark_rows
            rows[mark.record] = (mark.name, rows[mark.record][1], self.clock.now_ms(), cleared)
        mark.echo(mark.name)

    def agent_clear(self) -> None:
        now = self.clock.now_ms()
        self.log.clears.append(now)
        if self._interruption_ms is not None:
            self.log.barge_ins.append((self._interruption_ms, now))
            self._interruption_ms = None
        marks = self.playout.clear() + self._in_flight[2]
        self._in_flight = (b"", 0, [])
        for mark in marks:
            self._echo(mark, cleared=True)

    def play_to_callee(self, audio: bytes) -> None:
        """Audio the network itself plays (<Say>, <Play digits>), queued like agent media."""
        self.playout.push_audio(audio)

    async def drain(self) -> None:
        """Wait until everything queued for the callee has played."""
        while not self._stopped and (not self.playout.empty() or self._in_flight[1]):
            await self.next_tick()

    # --- the callee side (used by scenarios) -----------------------------------------------------
    def now_ms(self) -> float:
        return self.clock.now_ms()

    async def next_tick(self) -> None:
        if not self._stopped:
            if self._tick is None:
                self._tick = asyncio.get_running_loop().create_future()
            await self._tick

    async def say(self, text: str, rate: float = 1.0) -> None:
        words = encode_words(text, rate)
        if words:
            # The last word's trailing pause is not speech: end the utterance on the word itself.
            words[-1] = (words[-1][0], encode_speech(words[-1][0], rate))
        await self._speak([Segment("word", w, a) for w, a in words])

    async def key(self, digits: str) -> None:
        await self._speak([Segment("digit", d, dtmf_tones(d)) for d in digits])

    async def sound(self, label: str, audio: bytes) -> None:
        await self._speak([Segment("sound", label, audio)])

    async def _speak(self, segments: list[Segment]) -> None:
        if not segments or self._stopped:
            return
        segments[-1].done = asyncio.get_running_loop().create_future()
        for seg in segments:
            self.mouth.queue(seg)
        await segments[-1].done

    def set_background(self, audio: bytes | None) -> None:
        self.mouth.set_background(audio)

    def agent_silent_for_ms(self) -> float | None:
        """How long the agent has been silent, or None if it has not spoken yet."""
        if self.agent_last_audio_ms is None:
            return None
        if self.agent_audio_since_ms is not None:
            return 0.0
        return self.clock.now_ms() - self.agent_last_audio_ms

    def hangup(self) -> None:
        with contextlib.suppress(Exception):
            self._on_callee_hangup()
