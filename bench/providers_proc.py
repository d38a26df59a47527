"""The provider emulators (Deepgram, OpenAI, Anthropic, ElevenLabs) in a process of their own.

On two cores, one event loop running the phone network *and* every provider for 50-100 calls lags
behind: its lag then shows up as "overhead" although it is the load generator's. Here the phone network
stays in the benchmark process and the providers get their own loop (and, given the chance, their own
core). The child prints its settings (env names, one JSON line) once serving, records turn stages with
``turn_trace.Trace`` and writes them to ``trace_file`` when terminated.

    python bench/providers_proc.py TRACE_FILE   (started by ``providers()``; not meant to be run by hand)
    BENCH_PROVIDERS_SLOW_CALLBACKS=10 bench/latency.py ...   (names callbacks holding its loop > 10 ms)
    BENCH_TTS_REALTIME_FACTOR=0.1 bench/capacity.py ...      (TTS audio at 10x real time, not at once)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import server_probes  # noqa: E402
import turn_trace  # noqa: E402

from sim.__main__ import EmulatorStack  # noqa: E402

LLM_TTFT_MS, TTS_TTFB_MS, LLM_TOKENS_PER_S = 250, 150, 2000
PROVIDER_ENV = ("DEEPGRAM_", "ELEVENLABS_", "OPENAI_", "ANTHROPIC_")


def tune_emulator_gc() -> None:
    """GC in the emulator processes as in the call server (dialer.runtime.tune_gc), once they serve.

    Without it, full collections walking every SDK/Starlette/SQLModel object alive since start-up and every
    request logged since stopped the emulators' loops for 50-110 ms at 50 calls: late frames, late
    endpoints, measured as the call server's overhead. BENCH_EMULATOR_GC=default keeps Python's defaults
    (to compare)."""
    if os.environ.get("BENCH_EMULATOR_GC") != "default":
        from dialer.runtime import tune_gc

        tune_gc()


def make_stack() -> EmulatorStack:
    stack = EmulatorStack(speed=1.0, brain=turn_trace.tagged_brain(), llm_ttft_s=LLM_TTFT_MS / 1000,
                          llm_tokens_per_s=LLM_TOKENS_PER_S, with_telegram=False)
    stack.elevenlabs.ttfb_s = TTS_TTFB_MS / 1000
    # 0 (default): a reply's audio all at once after the first-byte delay; 0.1: streamed at 10x real time
    stack.elevenlabs.realtime_factor = float(os.environ.get("BENCH_TTS_REALTIME_FACTOR", "0"))
    return stack


async def _child(trace_file: Path) -> None:
    tracer = turn_trace.Trace()
    tracer.install()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    lag: list[float] = []
    async with make_stack().running() as stack:
        env = {k: v for k, v in stack.env().items() if k.startswith(PROVIDER_ENV)}
        tune_emulator_gc()
        gc_pauses = server_probes.watch_gc()
        print(json.dumps(env), flush=True)
        probe = asyncio.create_task(turn_trace.loop_lag(lag))
        await stop.wait()
        probe.cancel()
    await asyncio.to_thread(trace_file.write_text, json.dumps({**tracer.dump(), "loop_lag_ms": lag,
                                                               "gc_pauses_ms": gc_pauses}))


@contextlib.asynccontextmanager
async def providers(trace_file: Path, tracer: turn_trace.Trace) -> AsyncIterator[tuple[dict[str, str], int]]:
    """Run the child; yield its settings and pid; on exit stop it and load its stages into ``tracer``."""
    child = await asyncio.to_thread(subprocess.Popen, [sys.executable, __file__, str(trace_file)],
                                    stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        yield json.loads(line), child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        await asyncio.to_thread(child.wait, 30)
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(await asyncio.to_thread(trace_file.read_text))
            tracer.load(data)
            tracer.provider_lag_ms = data.get("loop_lag_ms", [])
            tracer.provider_gc_ms = data.get("gc_pauses_ms", {})


def runner() -> asyncio.Runner:
    """uvloop, or with BENCH_PROVIDERS_SLOW_CALLBACKS set asyncio's debug loop naming (on stderr) every
    callback that held the emulators' loop longer than that many ms (diagnosis of their lag maxima)."""
    slow_ms = os.environ.get("BENCH_PROVIDERS_SLOW_CALLBACKS")
    if slow_ms:
        import logging

        logging.basicConfig(level=logging.WARNING)
        debug = asyncio.Runner(debug=True)
        debug.get_loop().slow_callback_duration = float(slow_ms) / 1000
        return debug
    from dialer.runtime import loop_factory

    return asyncio.Runner(loop_factory=loop_factory())


if __name__ == "__main__":
    with runner() as loop_runner:
        loop_runner.run(_child(Path(sys.argv[1])))
