"""Where a turn's time goes: timestamps taken inside the emulators, on the host's monotonic clock.

Measurement only: the wrappers installed here record times and call the emulators' own code unchanged.
Every callee utterance carries a tag ("caller 7 question 3") that the speech codec carries through the
Deepgram emulator's transcript and the LLM emulator's request; ``tagged_brain`` answers with a
three-letter word naming the turn ("Ahd, got it."), which starts the first phrase sent to the TTS
emulator, so each stage is matched to its turn even at 100 concurrent calls. ``time.monotonic`` and the
call server's ``time.perf_counter`` read the same CLOCK_MONOTONIC, and
the phone emulator's clock (speed 1) is ``Clock._t0`` + call ms, so the stages line up across processes.

Stages of one turn (all in ms):
    endpointing  callee's last speech frame -> Deepgram emulator emits ``speech_final`` (floor 300; the
                 rest is the audio's trip phone -> call server -> Deepgram plus emulator lag)
    to_llm       ``speech_final`` emitted -> the LLM emulator has the request (call server: SDK parse,
                 turn-taking, history, request)
    llm          request -> first token sent by the emulator (floor 250)
    to_tts       first token sent -> the TTS emulator has the first phrase (call server: SSE parse, phrase
                 split, TTS request)
    tts          TTS request -> first audio byte sent by the emulator (floor 150)
    to_phone     first audio byte sent -> the phone emulator receives the first agent frame (call server:
                 chunking, base64/JSON, WebSocket; phone: receive)
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sim import deepgram_stt, elevenlabs, llm_emulator
from sim.llm_script import Conversation, Rule, ScriptedBrain

TAG = re.compile(r"caller (\d+),? question (\d+)", re.IGNORECASE)
_TAG_WORD = re.compile(r"^([A-Z][a-z][a-z]),")
STAGES = ("endpointing", "to_llm", "llm", "to_tts", "tts", "to_phone")
FLOORS = {"endpointing": 300.0, "llm": 250.0, "tts": 150.0}
LONG = ("Sure, let me explain how this works: I will check the appointment time, then confirm the "
        "address with you, and finally send a reminder message the day before the visit.")


async def loop_lag(out: list[float], period_s: float = 0.005, when: Callable[[], bool] | None = None) -> None:
    """Append how late each ``period_s`` sleep woke (ms): how long something else held this loop; only
    while ``when()`` is true if given."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(period_s)
        if when is None or when():
            out.append((time.perf_counter() - start - period_s) * 1000)


def utterance(caller: int, question: int) -> str:
    return f"This is caller {caller} question {question}, could you please confirm it for me?"


def tag_word(caller: int, question: int) -> str:
    """Three letters naming the turn: the LLM's first phrase is "Bah," (two tokens, like "Okay,"), so the
    time to the first clause boundary is what the untagged reply "Okay, got it." would take."""
    return chr(65 + caller // 26) + chr(97 + caller % 26) + chr(97 + question % 26)


def _echo(conv: Conversation) -> str:
    match = TAG.search(conv.pending_user_text())
    if match is None:
        return "Okay, got it."
    # The tag leads the first phrase, so the TTS request is matched to its turn too.
    return f"{tag_word(int(match[1]), int(match[2]))}, got it."


def tagged_brain() -> ScriptedBrain:
    return ScriptedBrain([Rule(user="explain the process", say=LONG)], default=_echo)


def _key(text: str) -> tuple[int, int] | None:
    match = TAG.search(text)
    if match:
        return int(match[1]), int(match[2])
    word = _TAG_WORD.match(text)
    if word is None:
        return None
    hi, lo, q = (ord(ch) for ch in word[1])
    return (hi - 65) * 26 + lo - 97, q - 97


@dataclass
class Trace:
    """First time (monotonic s) each stage was reached, per (caller, question)."""

    dg_final: dict[tuple[int, int], float] = field(default_factory=dict)
    llm_request: dict[tuple[int, int], float] = field(default_factory=dict)
    llm_first: dict[tuple[int, int], float] = field(default_factory=dict)
    tts_request: dict[tuple[int, int], float] = field(default_factory=dict)
    tts_first: dict[tuple[int, int], float] = field(default_factory=dict)
    provider_lag_ms: list[float] = field(default_factory=list)
    """Event-loop lag of the provider emulators' process."""
    provider_gc_ms: dict[str, list[float]] = field(default_factory=dict)
    """Its GC pauses (ms) per generation."""
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def install(self) -> None:
        self._wrap_deepgram()
        self._wrap_llm()
        self._wrap_tts()

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _patch(self, owner: Any, name: str, new: Any) -> Any:
        old = getattr(owner, name)
        setattr(owner, name, new)
        self._undo.append(lambda: setattr(owner, name, old))
        return old

    def _wrap_deepgram(self) -> None:
        trace = self
        results = self._patch(deepgram_stt.ListenSession, "_results", None)

        def timed_results(session: Any, *, is_final: bool, speech_final: bool = False,
                          from_finalize: bool = False) -> dict[str, Any]:
            out = results(session, is_final=is_final, speech_final=speech_final, from_finalize=from_finalize)
            if speech_final:
                key = _key(out["channel"]["alternatives"][0]["transcript"])
                if key is not None:
                    trace.dg_final.setdefault(key, time.monotonic())
            return out

        deepgram_stt.ListenSession._results = timed_results  # type: ignore[method-assign]

    def _wrap_llm(self) -> None:
        trace = self
        decide = self._patch(llm_emulator.LLMEmulator, "decide", None)
        send_frames = self._patch(llm_emulator.PacedStream, "_send_frames", None)

        async def timed_decide(emu: Any, endpoint: str, raw: bytes, conv: Conversation) -> Any:
            record = await decide(emu, endpoint, raw, conv)
            arrived = record.arrived  # time.monotonic() at arrival
            key = _key(conv.pending_user_text())
            if key is not None:
                trace.llm_request.setdefault(key, arrived)
                record.trace_key = key
            return record

        async def timed_send_frames(stream: Any, send: Any, gone: Any) -> Any:
            key = getattr(stream.record, "trace_key", None)
            first = next((i for i, f in enumerate(stream.frames) if f.tokens), None)
            count = 0

            async def counting_send(message: Any) -> None:
                nonlocal count
                await send(message)
                if message.get("type") == "http.response.body" and message.get("body"):
                    if count == first and key is not None:
                        trace.llm_first.setdefault(key, time.monotonic())
                    count += 1

            return await send_frames(stream, counting_send, gone)

        llm_emulator.LLMEmulator.decide = timed_decide  # type: ignore[method-assign]
        llm_emulator.PacedStream._send_frames = timed_send_frames  # type: ignore[method-assign]

    def _wrap_tts(self) -> None:
        trace = self
        pieces = self._patch(elevenlabs, "_pieces", None)

        def timed_pieces(emu: Any, audio: bytes, arrived: float) -> AsyncIterator[bytes]:
            # Called by the request handler right after it logged the text it is about to speak; the
            # request arrived at time.monotonic() `arrived`.
            key = _key(emu.generations[-1]) if emu.generations else None
            if key is not None:
                trace.tts_request.setdefault(key, arrived)

            async def gen() -> AsyncIterator[bytes]:
                async for piece in pieces(emu, audio, arrived):
                    if key is not None:
                        trace.tts_first.setdefault(key, time.monotonic())
                    yield piece

            return gen()

        elevenlabs._pieces = timed_pieces  # type: ignore[assignment]

    _FIELDS = ("dg_final", "llm_request", "llm_first", "tts_request", "tts_first")

    def dump(self) -> dict[str, list[list[float]]]:
        """JSON-able: {stage: [[caller, question, time], ...]} (the providers may run in another process)."""
        return {name: [[*key, t] for key, t in getattr(self, name).items()] for name in self._FIELDS}

    def load(self, data: dict[str, list[list[float]]]) -> None:
        for name in self._FIELDS:
            getattr(self, name).update({(int(c), int(q)): t for c, q, t in data.get(name, [])})

    def stages(self, key: tuple[int, int], speech_end: float, first_audio: float) -> dict[str, float] | None:
        """One turn's stage durations (ms), or None if a stage was not seen."""
        points = [speech_end, self.dg_final.get(key), self.llm_request.get(key), self.llm_first.get(key),
                  self.tts_request.get(key), self.tts_first.get(key), first_audio]
        if any(p is None for p in points):
            return None
        return {name: (b - a) * 1000 for name, a, b in zip(STAGES, points, points[1:], strict=False)}  # type: ignore[operator]
