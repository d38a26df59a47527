"""Timestamps inside the call server process (bench/server_proc.py), per tagged turn.

Measurement only, like turn_trace: thin wrappers record the monotonic time at which the call server
    stt_final    has the ``speech_final`` result (parsed from the Deepgram listen socket),
    llm_call     calls the LLM provider (after turn-taking, history, logging: our session code),
    llm_wire     hands the LLM request to the HTTP transport (the SDK has built it),
    llm_token    has the first text token out of the OpenAI SDK,
    tts_call     calls the TTS provider with the first phrase,
    tts_wire     hands that TTS request to the HTTP transport,
so that the emulator-side stages split into "our code" and "SDK + wire" parts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from turn_trace import _key

POINTS = ("stt_final", "llm_call", "llm_wire", "llm_token", "tts_call", "tts_wire")


def install() -> dict[str, dict[tuple[int, int], float]]:
    from openai._vendor.httpx_aiohttp.transport import AiohttpTransport as LLMTransport

    from callserver.aiohttp_transport import AiohttpTransport as TTSTransport
    from callserver.llm.openai import OpenAILLM
    from callserver.stt.deepgram import DeepgramSttStream
    from callserver.tts.elevenlabs import ElevenLabsTTS

    seen: dict[str, dict[tuple[int, int], float]] = {name: {} for name in POINTS}
    pending: dict[str, tuple[int, int]] = {}
    on_result = DeepgramSttStream._on_result
    llm_stream = OpenAILLM.stream
    tts_synthesize = ElevenLabsTTS.synthesize

    def timed_on_result(self: Any, text: str, is_final: bool, speech_final: bool, *args: Any) -> None:
        # Called with a Results message's fields, once parsed (by us, or the SDK on its fallback path).
        if speech_final:
            key = _key(text)
            if key is not None:
                seen["stt_final"].setdefault(key, time.monotonic())
        on_result(self, text, is_final, speech_final, *args)

    async def timed_llm_stream(self: Any, history: Any, tools: Any) -> AsyncIterator[Any]:
        users = [m for m in history.messages if getattr(m, "role", "") == "user"]
        key = _key(str(getattr(users[-1], "text", "") or "")) if users else None
        if key is not None:
            seen["llm_call"].setdefault(key, time.monotonic())
            pending["llm_wire"] = key
        async for event in llm_stream(self, history, tools):
            if key is not None and getattr(event, "text", ""):
                seen["llm_token"].setdefault(key, time.monotonic())
            yield event

    def timed_synthesize(self: Any, text: str) -> AsyncIterator[bytes]:
        key = _key(text)
        if key is not None:
            seen["tts_call"].setdefault(key, time.monotonic())
            pending["tts_wire"] = key
        return tts_synthesize(self, text)

    def wire(point: str, handle: Any) -> Any:
        async def timed_handle(transport: Any, request: Any) -> Any:
            key = pending.pop(point, None)
            if key is not None:
                seen[point].setdefault(key, time.monotonic())
            return await handle(transport, request)
        return timed_handle

    # One call at a time is what this splits (bench --calls 1): the next request after a tagged
    # call is that call's request.
    LLMTransport.handle_async_request = wire(  # type: ignore[method-assign]
        "llm_wire", LLMTransport.handle_async_request)
    TTSTransport.handle_async_request = wire(  # type: ignore[method-assign]
        "tts_wire", TTSTransport.handle_async_request)

    DeepgramSttStream._on_result = timed_on_result  # type: ignore[method-assign]
    OpenAILLM.stream = timed_llm_stream  # type: ignore[method-assign]
    ElevenLabsTTS.synthesize = timed_synthesize  # type: ignore[method-assign]
    return seen


def dump(seen: dict[str, dict[tuple[int, int], float]]) -> dict[str, list[list[float]]]:
    return {name: [[*key, t] for key, t in values.items()] for name, values in seen.items()}


def watch_gc() -> dict[str, list[float]]:
    """Every garbage collection's pause (ms), per generation: a full collection stops the event loop.

    Also the CPU the collecting thread spent in it (``"0cpu"`` ...): a pause much longer than its CPU
    time is the process waiting for a core (the machine is shared), not the collector's own work."""
    import gc

    pauses: dict[str, list[float]] = {"0": [], "1": [], "2": [], "0cpu": [], "1cpu": [], "2cpu": []}
    started: list[float] = [0.0, 0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0], started[1] = time.perf_counter(), time.thread_time()
        else:
            gen = str(info["generation"])
            pauses[gen].append((time.perf_counter() - started[0]) * 1000)
            pauses[gen + "cpu"].append((time.thread_time() - started[1]) * 1000)

    callback.pauses = pauses  # type: ignore[attr-defined]  # to find (and remove) this callback
    gc.callbacks.append(callback)
    return pauses


def unwatch_gc(pauses: dict[str, list[float]]) -> None:
    """Remove the callback ``watch_gc`` installed for ``pauses``."""
    import gc

    gc.callbacks[:] = [cb for cb in gc.callbacks if getattr(cb, "pauses", None) is not pauses]
