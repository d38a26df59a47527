"""Deepgram live speech-to-text (``/v1/listen`` WebSocket), decoding ``sim.codec`` speech.

Followed (developers.deepgram.com): "Live Audio" API reference (/reference/speech-to-text/listen-streaming),
"Endpointing" (/docs/endpointing), "Utterance End" (/docs/utterance-end), "Speech Started"
(/docs/speech-started), "Interim Results" (/docs/interim-results), "Audio Keep Alive"
(/docs/audio-keep-alive),
"Finalize" (/docs/finalize), "Close Stream" (/docs/close-stream), and "STT Troubleshooting WebSocket, NET,
and DATA Errors" (close 1011 with payload NET-0001 after ~10 s without audio or KeepAlive).

All timing is audio time (bytes received at 8 kHz): a client streaming faster than real time gets its
results sooner, like the real service. Only the idle timeout and the drop fault use the wall clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from sim.codec import HeardWord, SpeechDecoder

if TYPE_CHECKING:
    from sim.deepgram import DeepgramEmulator

_STEP = 160  # process audio 20 ms at a time so events interleave as they would in real time
_VAD_RUN_GAP_MS = 500  # without endpointing, a pause this long ends a SpeechStarted run
_STRIP = string.punctuation.replace("-", "").replace("'", "") + "—–…“”‘’¡¿"


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() == "true"


@dataclass
class ListenOptions:
    model: str = "nova-3"
    encoding: str = "mulaw"
    sample_rate: int = 8000
    channels: int = 1
    interim_results: bool = False
    endpointing: int | None = 10
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    language: str = "en"

    @classmethod
    def from_query(cls, q: dict[str, str]) -> ListenOptions:
        """Parse the query string; ValueError for what the emulator (or Deepgram) would refuse."""
        endpointing_raw = q.get("endpointing", "10").lower()
        options = cls(
            model=q.get("model", "nova-3"),
            encoding=q.get("encoding", "mulaw"),
            sample_rate=int(q.get("sample_rate", "8000")),
            channels=int(q.get("channels", "1")),
            interim_results=_flag(q.get("interim_results"), False),
            endpointing=None if endpointing_raw == "false" else int(endpointing_raw),
            utterance_end_ms=int(q["utterance_end_ms"]) if "utterance_end_ms" in q else None,
            vad_events=_flag(q.get("vad_events"), False),
            punctuate=_flag(q.get("punctuate"), False),
            smart_format=_flag(q.get("smart_format"), False),
            language=q.get("language", "en"),
        )
        if options.encoding != "mulaw" or options.sample_rate != 8000 or options.channels != 1:
            raise ValueError("the emulator transcribes only encoding=mulaw, sample_rate=8000, channels=1")
        return options


MODEL_UUID = "1dbdfb4d-85b2-4659-9831-16b3c76229aa"


@dataclass
class ListenSession:
    """One /v1/listen stream: the transcription state machine, free of I/O so tests can drive it."""

    options: ListenOptions
    request_id: str
    max_segment_ms: float = 5000.0
    sent_json: list[str] = field(default_factory=list)
    """Every message sent, as the JSON text that went out. Text, not the dicts: the log lives as long as the
    session, and as dicts and lists it was ~8 containers per result, each a survivor that the cyclic GC's
    young collections walked and promoted (with the LLM request log, most of what triggered the provider
    emulators' collections at 50 calls); a str is not tracked by the GC."""
    heard: list[HeardWord] = field(default_factory=list)
    audio_bytes: int = 0
    close_code: int | None = None
    close_reason: str = ""

    def __post_init__(self) -> None:
        self.decoder = SpeechDecoder()
        self._sha = hashlib.sha256()
        self._segment: list[HeardWord] = []
        self._segment_json: list[dict[str, Any]] = []  # _word_json of each, built once: every interim
        # result repeats the segment's words so far
        self._window_start_ms = 0.0  # audio not yet covered by a final result starts here
        self._last_word_end: float | None = None
        self._endpointed = True  # no words since the last speech_final
        self._utterance_ended = True
        self._in_run = False

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every message sent, parsed (for tests: each call parses the log again)."""
        return [json.loads(text) for text in self.sent_json]

    @property
    def transcript(self) -> str:
        """Everything heard so far, as punctuated words."""
        return " ".join(w.word for w in self.heard)

    def audio(self, data: bytes) -> list[str]:
        """The messages (JSON text) ``data`` makes due, in order."""
        self.audio_bytes += len(data)
        self._sha.update(data)
        out: list[dict[str, Any]] = []
        for i in range(0, len(data), _STEP):
            for word in self.decoder.feed(data[i:i + _STEP]):
                self._on_word(word, out)
            self._tick(out)
        return self._record(out)

    def finalize(self) -> list[str]:
        self._endpointed = True
        return self._record([self._results(is_final=True, from_finalize=True)])

    def close_stream(self) -> list[str]:
        out = [self._results(is_final=True)] if self._segment else []
        out.append({
            "type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
            "sha256": self._sha.hexdigest(), "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "duration": self.decoder.position_ms / 1000, "channels": self.options.channels,
            "models": [MODEL_UUID], "model_info": {MODEL_UUID: self._model_info()},
        })
        return self._record(out)

    def _record(self, out: list[dict[str, Any]]) -> list[str]:
        texts = [json.dumps(m) for m in out]
        self.sent_json += texts
        return texts

    def _on_word(self, word: HeardWord, out: list[dict[str, Any]]) -> None:
        self._start_run(word.start_ms, out)
        self.heard.append(word)
        self._segment.append(word)
        self._segment_json.append(self._word_json(word))
        self._last_word_end = word.end_ms
        self._endpointed = self._utterance_ended = False
        if word.end_ms - self._segment[0].start_ms >= self.max_segment_ms:
            # Long speech without a pause still gets finalised every few seconds.
            out.append(self._results(is_final=True))
        elif self.options.interim_results:
            out.append(self._results(is_final=False))

    def _start_run(self, start_ms: float, out: list[dict[str, Any]]) -> None:
        if self._in_run:
            return
        self._in_run = True
        if self.options.vad_events:
            out.append({"type": "SpeechStarted", "channel": [0], "timestamp": round(start_ms / 1000, 3)})

    def _tick(self, out: list[dict[str, Any]]) -> None:
        started = self.decoder.speech_started_ms
        if started is not None:
            self._start_run(started, out)
            return
        if self._last_word_end is None:
            return
        gap = self.decoder.position_ms - self._last_word_end
        endpointing = self.options.endpointing
        if endpointing is not None and not self._endpointed and gap >= endpointing:
            out.append(self._results(is_final=True, speech_final=True))
            self._endpointed = True
            self._in_run = False
        if endpointing is None and gap >= _VAD_RUN_GAP_MS:
            self._in_run = False
        limit = self.options.utterance_end_ms
        if limit is not None and self.options.interim_results and not self._utterance_ended and gap >= limit:
            end_s = self._last_word_end / 1000
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end_s})
            self._utterance_ended = True

    def _model_info(self) -> dict[str, str]:
        return {"name": "general-nova-3", "version": "2025-01-01.0", "arch": self.options.model}

    def _word_json(self, w: HeardWord) -> dict[str, Any]:
        plain = w.word.strip(_STRIP).lower() or w.word.lower()
        out: dict[str, Any] = {
            "word": plain, "start": round(w.start_ms / 1000, 3), "end": round(w.end_ms / 1000, 3),
            "confidence": 0.99,
        }
        if self.options.punctuate or self.options.smart_format:
            out["punctuated_word"] = w.word
        return out

    def _results(self, *, is_final: bool, speech_final: bool = False, from_finalize: bool = False) -> dict:
        now = self.decoder.position_ms
        start = self._window_start_ms
        words = list(self._segment_json)
        transcript = " ".join(w.get("punctuated_word", w["word"]) for w in words)
        if is_final:
            self._segment, self._segment_json = [], []
            self._window_start_ms = now
        return {
            "type": "Results", "channel_index": [0, 1],
            "duration": round((now - start) / 1000, 3), "start": round(start / 1000, 3),
            "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": transcript, "confidence": 0.99 if words else 0.0, "words": words,
            }]},
            "metadata": {
                "request_id": self.request_id, "model_info": self._model_info(), "model_uuid": MODEL_UUID,
            },
        }


class _Deadline:
    """Ends a listen socket's wait for the next message at its idle or drop deadline.

    One timer armed for the whole socket and moved only when it goes off early, instead of an
    ``asyncio.timeout`` per message: that built a Timeout and a timer handle, and cancelled them, for every
    20 ms audio frame of every call (7-10 us of the emulators' loop each, measured with uvloop). The idle
    deadline only moves later as messages arrive, so the timer checks it when it goes off and re-arms; a
    deadline that moves earlier (a drop fault switched on mid-stream) re-arms it at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], due: float) -> None:
        self.loop, self.task, self.due = loop, task, due
        self.expired = False
        self.receiving = False
        self._armed = due
        self._handle = loop.call_at(due, self._check)

    def move(self, due: float) -> None:
        self.due = due
        if due < self._armed:
            self._arm(due)

    def _arm(self, at: float) -> None:
        self._handle.cancel()
        self._armed = at
        self._handle = self.loop.call_at(at, self._check)

    def _check(self) -> None:
        if self.loop.time() < self.due:
            self._arm(self.due)
            return
        self.expired = True
        if self.receiving:  # only the wait for a message is cut short, as asyncio.timeout around it did
            self.task.cancel()

    def cancel(self) -> None:
        self._handle.cancel()


async def run_listen(ws: WebSocket, emu: DeepgramEmulator, session: ListenSession) -> None:
    """Serve an accepted /v1/listen socket until the client closes it, CloseStream, idle or a fault."""
    loop = asyncio.get_running_loop()
    opened = last_activity = loop.time()
    task = asyncio.current_task()
    assert task is not None
    deadline = _Deadline(loop, task, _due(emu, opened, last_activity))
    try:
        while True:
            if deadline.expired:
                await _expire(ws, emu, session, loop, opened)
                return
            deadline.receiving = True
            try:
                message = await ws.receive()
            except asyncio.CancelledError:
                # Ours only if the deadline fired and nobody else cancelled this task too.
                if not deadline.expired or task.uncancel() > 0:
                    raise
                await _expire(ws, emu, session, loop, opened)
                return
            finally:
                deadline.receiving = False
            if message["type"] == "websocket.disconnect":
                session.close_code = message.get("code", 1000)
                return
            last_activity = loop.time()
            deadline.move(_due(emu, opened, last_activity))
            if message.get("bytes") is not None:
                emu.audio_seconds += len(message["bytes"]) / 8000
                out = session.audio(message["bytes"])
            else:
                out, close = _control(session, message.get("text") or "")
                if close:
                    for text in out:
                        await ws.send_text(text)
                    await _close(ws, session, 1000, "")
                    return
            for text in out:
                await ws.send_text(text)
    finally:
        deadline.cancel()


def _due(emu: DeepgramEmulator, opened: float, last_activity: float) -> float:
    """When the socket closes unless a message arrives: idle timeout, or the drop fault if sooner."""
    idle_at = last_activity + emu.idle_timeout_s
    drop_s = emu.faults.drop_ws_after_s
    return idle_at if drop_s is None else min(idle_at, opened + drop_s)


async def _expire(ws: WebSocket, emu: DeepgramEmulator, session: ListenSession,
                  loop: asyncio.AbstractEventLoop, opened: float) -> None:
    drop_s = emu.faults.drop_ws_after_s
    dropped = drop_s is not None and loop.time() >= opened + drop_s
    await _close(ws, session, 1011, "emulated fault: connection dropped" if dropped else "NET-0001")


def _control(session: ListenSession, text: str) -> tuple[list[str], bool]:
    """Handle a text frame: (messages to send as JSON text, whether to close afterwards)."""
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind == "KeepAlive":
        return [], False
    if kind == "Finalize":
        return session.finalize(), False
    if kind == "CloseStream":
        return session.close_stream(), True
    error = {
        "type": "Error", "variant": "SchemaError", "message": text,
        "description": "Failed to parse the client message: expected KeepAlive, Finalize or CloseStream.",
    }
    return session._record([error]), False


async def _close(ws: WebSocket, session: ListenSession, code: int, reason: str) -> None:
    session.close_code, session.close_reason = code, reason
    await ws.close(code, reason)
