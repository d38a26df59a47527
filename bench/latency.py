"""Voice-to-voice latency and barge-in reaction, measured from the phone emulator's side.

    .venv/bin/python bench/latency.py [--turns 10] [--calls 1,50]
    BENCH_SLOW_CALLBACKS=1 ...   (diagnosis: the call server on asyncio's debug loop names slow callbacks)
    BENCH_PHONE_SLOW_CALLBACKS=1 ...   (the same for this process, the phone network)

The emulated providers run at fixed latencies (Deepgram endpointing 300 ms of audio, LLM first token
250 ms, ElevenLabs first byte 150 ms, both from the request's arrival): their sum is the provider floor.
For every callee turn the phone emulator logs (callee's last speech frame, first agent audio frame
received); the gap minus the floor is our overhead, split into stages by emulator-side and call-server
timestamps (turn_trace, server_probes). Barge-in: from the end of the frame completing the first
interrupting word (what any STT needs) to `clear` at the phone; the call server itself logs STT event ->
`clear` sent (barge_in_ms). A warm-up call runs first and is reported on its own.

Three processes, as the load would be split in production: the call server (bench/server_proc.py:
the real app under uvicorn on uvloop with GC tuned as ``dialer callserver`` runs it, plus event-loop
lag, GC and RSS probes), the provider emulators (providers_proc) and, here, the phone network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import proc_stats  # noqa: E402
import providers_proc  # noqa: E402
import server_probes  # noqa: E402
import turn_trace as trace  # noqa: E402
from figures import cpu_report, gc_report, pct, report  # noqa: E402, F401 (capacity.py uses report)
from sqlmodel import select  # noqa: E402

from shared.config import Settings, load_settings  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.migrate import upgrade_async  # noqa: E402
from shared.models import Call, CallEvent  # noqa: E402
from shared.twilio_api import Telephony  # noqa: E402
from sim.__main__ import EmulatorStack  # noqa: E402
from sim.codec import word_ms  # noqa: E402
from sim.scenarios import Scenario  # noqa: E402
from sim.scenarios.steps import hangup, interrupt_after, pause, say, wait_for_agent  # noqa: E402

ENDPOINTING_MS, LLM_TTFT_MS, TTS_TTFB_MS = 300, providers_proc.LLM_TTFT_MS, providers_proc.TTS_TTFB_MS
FLOOR_MS = ENDPOINTING_MS + LLM_TTFT_MS + TTS_TTFB_MS
INSIDE = {  # to_llm and to_tts split at timestamps taken inside the call server (bench/server_probes.py)
    "to_llm: Deepgram emulator -> parsed speech_final": ("dg_final", "stt_final"),
    "to_llm: session (turn-taking, history) -> LLM call": ("stt_final", "llm_call"),
    "to_llm: OpenAI SDK builds the request": ("llm_call", "llm_wire"),
    "to_llm: HTTP to the emulator, its parsing": ("llm_wire", "llm_request"),
    "to_tts: emulator first token -> SDK yields it": ("llm_first", "llm_token"),
    "to_tts: first token -> TTS call (phrase cut)": ("llm_token", "tts_call"),
    "to_tts: ElevenLabs SDK builds the request": ("tts_call", "tts_wire"),
    "to_tts: HTTP to the emulator, its parsing": ("tts_wire", "tts_request"),
}
WARM_UP_CALLER = 600
SERVER_FIGURES = ("llm_first_token_ms", "first_phrase_ms", "tts_first_byte_ms", "first_audio_ms")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def number(caller: int) -> str:
    return f"+1212555{1000 + caller:04d}"


def talker(caller: int, turns: int) -> Scenario:
    steps: list[Any] = [pause(1500)]  # the product drops audio sent before its STT socket is up
    for i in range(turns):
        steps += [say(trace.utterance(caller, i + 1)), wait_for_agent(silence_ms=700)]
    return Scenario("talker", [*steps, hangup()], ring_ms=500)


def interrupter(caller: int, turns: int) -> Scenario:
    steps: list[Any] = [pause(1500)]
    for i in range(turns):
        steps += [say(f"Please explain the process, part {i + 1}."),
                  # Not "hold on": the call server rightly takes that for being put on hold.
                  interrupt_after(1200, "Wait, wait, I have one question."), wait_for_agent(silence_ms=700)]
    return Scenario("interrupter", [*steps, hangup()], ring_ms=500)


@contextlib.asynccontextmanager
async def rig(scenario: Callable[[int], Scenario], *, extra_env: dict[str, str] | None = None
              ) -> AsyncIterator[Rig]:
    """The phone network here, the provider emulators and the call server in child processes (see
    providers_proc); yields a Rig that places calls. Caller k (0-based) dials ``number(k)`` and behaves
    as ``scenario(k)``."""
    stack = providers_proc.make_stack()  # only its phone network is used here
    tracer = trace.Trace()
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        trace_file = Path(tmp) / "trace.json"
        async with stack.running(), providers_proc.providers(trace_file, tracer) as (provider_env, pid):
            port = free_port()
            env = {**os.environ, **stack.env(), **provider_env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                   "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "LOG_LEVEL": "WARNING",
                   "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs",
                   "DEEPGRAM_ENDPOINTING_MS": str(ENDPOINTING_MS), "MAX_CONCURRENT_CALLS": "500",
                   "STATS_FILE": f"{tmp}/stats.json", **(extra_env or {})}
            fields = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
            settings = load_settings(**fields)
            await upgrade_async(settings.database_url)
            server_proc = [sys.executable, str(ROOT / "bench" / "server_proc.py")]
            child = await asyncio.to_thread(subprocess.Popen, server_proc, env=env, cwd=tmp)
            db = Database(settings.database_url)
            rig_ = Rig(stack, settings, db, Telephony(settings), child, Path(env["STATS_FILE"]), scenario,
                       tracer)
            rig_.cpu.pids.update({"call server": child.pid, "provider emulators": pid})
            probe = asyncio.create_task(trace.loop_lag(rig_.phone_lag_ms, when=lambda: rig_.live))
            try:
                await rig_.wait_ready(port)
                providers_proc.tune_emulator_gc()
                rig_.phone_gc_ms = server_probes.watch_gc()
                yield rig_
            finally:
                probe.cancel()
                server_probes.unwatch_gc(rig_.phone_gc_ms)
                await rig_.stop()
                await rig_.telephony.close()
                await db.close()


class Rig:
    def __init__(self, stack: EmulatorStack, settings: Any, db: Database, telephony: Telephony,
                 child: subprocess.Popen[bytes], stats_file: Path, scenario: Callable[[int], Scenario],
                 tracer: trace.Trace) -> None:
        self.stack, self.settings, self.db, self.telephony = stack, settings, db, telephony
        self.child, self.stats_file, self.scenario, self.trace = child, stats_file, scenario, tracer
        self.server_stats: dict[str, Any] = {}
        self.call_ids: list[int] = []
        self.phone_lag_ms: list[float] = []
        """Event-loop lag of this process (the phone network: the callee side of every call)."""
        self.phone_gc_ms: dict[str, list[float]] = {}
        """GC pauses of this process (ms) per generation."""
        self.cpu = proc_stats.CpuWindow({"phone emulator": None})
        """CPU of each process while the last ``calls`` ran (see ``cpu_per_call_second``)."""
        self.call_seconds = 0.0
        self.live = False
        """Calls are being placed or in progress (the phone's lag is sampled only then, as the call
        server's is only while it has live calls: not the bench's own database reads after them)."""

    async def wait_ready(self, port: int) -> None:
        for _ in range(300):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("call server did not start")

    async def calls(self, n: int, timeout_s: float = 600, first: int = 0) -> list[Any]:
        """Place `n` calls at once (100 ms apart, as a burst of real dialing would be) and wait for all;
        callers are numbered from ``first``."""
        ids = []
        async with self.db.session() as s:
            for k in range(first, first + n):
                self.stack.network.attach(number(k), self.scenario(k))
                call = Call(to_number=number(k), from_number=self.settings.twilio_from_number, task="bench",
                            system_prompt="You are a test agent.", opening_line="Hi.", status="created")
                s.add(call)
                await s.flush()
                ids.append(call.id)
            await s.commit()
        sids = []
        self.cpu.start()
        self.live = True
        for k, call_id in enumerate(ids, first):
            sids.append(await self.telephony.place_call(to=number(k), call_id=call_id, record=False,
                                                        time_limit_s=600))
            await asyncio.sleep(0.1)
        net = self.stack.network
        try:
            await asyncio.gather(*(net.wait_for_end(sid, timeout_s) for sid in sids))
        finally:
            self.live = False
        self.cpu.stop()
        done = [net.calls[sid] for sid in sids]
        self.call_seconds = proc_stats.call_seconds(done)
        await self._wait_stored(ids)
        self.call_ids = ids
        return done

    def cpu_per_call_second(self) -> dict[str, float]:
        """CPU ms per second of call of each process over the last ``calls`` (machine load aside)."""
        return self.cpu.per_call_second(self.call_seconds)

    async def warm_up(self) -> list[float]:
        """One call before the measured ones: the first turn after a process starts pays one-off costs
        (imports inside the SDKs, first connections) in the call server and the emulators alike. Its
        overheads are returned, to be reported on their own."""
        done = await self.calls(1, first=WARM_UP_CALLER)
        return [end - start - FLOOR_MS for start, end in done[0].log.response_gaps]

    async def _wait_stored(self, ids: list[int], timeout_s: float = 60) -> None:
        # The call server's end-of-call work (summary) finishes after the phone hangs up.
        deadline = time.monotonic() + timeout_s
        while True:
            async with self.db.session() as s:
                rows = (await s.exec(select(Call).where(Call.id.in_(ids)))).all()  # type: ignore[union-attr]
            missing = [row for row in rows if row.ended_at is None or not row.outcome]
            if not missing:
                return
            if time.monotonic() > deadline:  # say which calls and how far they got, to diagnose
                states = "; ".join(f"#{r.id} status={r.status} ended_at={r.ended_at} outcome={r.outcome!r} "
                                   f"reason={r.end_reason!r}" for r in missing[:10])
                raise TimeoutError(f"{len(missing)} call(s) not stored as ended after {timeout_s:.0f} s: "
                                   f"{states}")
            await asyncio.sleep(0.2)

    async def server_turns(self) -> dict[int, list[dict[str, float]]]:
        """The call server's own per-turn figures (CallEvent turn_metrics), per call id, in order."""
        async with self.db.session() as s:
            rows = (await s.exec(select(CallEvent).where(CallEvent.type == "turn_metrics")
                                 .order_by(CallEvent.id))).all()  # type: ignore[arg-type]
        out: dict[int, list[dict[str, float]]] = {}
        for row in rows:
            out.setdefault(row.call_id, []).append({k: float(v) for k, v in row.payload.items()})
        return out

    def mono(self, call_ms: float) -> float:
        """A phone-clock time (call ms, speed 1) on the host's monotonic clock (s)."""
        return self.stack.network.clock._t0 + call_ms / 1000

    async def stop(self) -> None:
        self.child.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.child.wait, 30)
        if self.stats_file.exists():
            self.server_stats = json.loads(self.stats_file.read_text())


async def measure_latency(calls: int, turns: int) -> dict[str, Any]:
    async with rig(lambda k: talker(k, turns)) as r:
        warm_up = await r.warm_up()
        done = await r.calls(calls)
        server = await r.server_turns()
    gaps: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in trace.STAGES}
    figures: dict[str, list[float]] = {name: [] for name in SERVER_FIGURES}
    points = {name: {(int(c), int(q)): t for c, q, t in values}
              for name, values in r.server_stats.get("points", {}).items()}
    inside: dict[str, list[float]] = {name: [] for name in INSIDE}
    for k, call in enumerate(done):
        for i, (start, end) in enumerate(call.log.response_gaps):
            gaps.append(end - start)
            key = (k, i + 1)
            split = r.trace.stages(key, r.mono(start), r.mono(end))
            for name, value in (split or {}).items():
                stages[name].append(value)
            marks = {**{n: v.get(key) for n, v in points.items()},
                     "dg_final": r.trace.dg_final.get(key), "llm_request": r.trace.llm_request.get(key),
                     "llm_first": r.trace.llm_first.get(key), "tts_request": r.trace.tts_request.get(key)}
            for name, (a, b) in INSIDE.items():
                if marks.get(a) is not None and marks.get(b) is not None:
                    inside[name].append((marks[b] - marks[a]) * 1000)  # type: ignore[operator]
        for turn in server.get(r.call_ids[k], []):
            for name in SERVER_FIGURES:
                if name in turn:
                    figures[name].append(turn[name])
    return {"gaps": gaps, "overhead": [g - FLOOR_MS for g in gaps], "server": r.server_stats,
            "stages": stages, "figures": figures, "inside": inside, "warm_up": warm_up,
            "lags": {"call server": r.server_stats.get("loop_lag_ms", []), "phone emulator": r.phone_lag_ms,
                     "provider emulators": r.trace.provider_lag_ms},
            "cpu": r.cpu_per_call_second(), "call_seconds": r.call_seconds,
            "gc": {"call server": r.server_stats.get("gc_pauses_ms", {}), "phone emulator": r.phone_gc_ms,
                   "provider emulators": r.trace.provider_gc_ms}}


async def measure_barge_in(calls: int, turns: int) -> dict[str, Any]:
    async with rig(lambda k: interrupter(k, turns)) as r:
        done = await r.calls(calls)
        server = await r.server_turns()
    phone, after_word = [], []
    for call in done:
        for start, clear in call.log.barge_ins:
            phone.append(clear - start)
            # STT can only report a word once it is complete: the end of the 20 ms frame that completes
            # the first interrupting word (its spoken part, without the pause after it) is the floor.
            word = next((w for w in call.log.said if w.start_ms >= start - 1), None)
            if word is not None:
                spoken_end = start + math.ceil((word.start_ms - start + word_ms(word.word)) / 20) * 20
                after_word.append(clear - spoken_end)
    server_ms = [t["barge_in_ms"] for turns_ in server.values() for t in turns_ if "barge_in_ms" in t]
    return {"phone": phone, "after_word": after_word, "server": server_ms,
            "lags": {"call server": r.server_stats.get("loop_lag_ms", []), "phone emulator": r.phone_lag_ms,
                     "provider emulators": r.trace.provider_lag_ms},
            "cpu": r.cpu_per_call_second(), "call_seconds": r.call_seconds,
            "gc": {"call server": r.server_stats.get("gc_pauses_ms", {}), "phone emulator": r.phone_gc_ms,
                   "provider emulators": r.trace.provider_gc_ms}}


async def main(calls_list: list[int], turns: int) -> None:
    print(f"provider floor: endpointing {ENDPOINTING_MS} + LLM first token {LLM_TTFT_MS} + TTS first byte "
          f"{TTS_TTFB_MS} = {FLOOR_MS} ms; load average {os.getloadavg()[0]:.2f}")
    for calls in calls_list:
        t0 = time.perf_counter()
        lat = await measure_latency(calls, turns)
        print(f"\n== {calls} concurrent call(s), {turns} turns each ({time.perf_counter() - t0:.0f} s, "
              f"load average now {os.getloadavg()[0]:.2f})")
        print(report("voice-to-voice", lat["gaps"]))
        print(report("overhead above floor", lat["overhead"]))
        print("  (a warm-up call before these, first after start-up: overhead "
              + ", ".join(f"{v:.1f}" for v in lat["warm_up"]) + " ms)")
        print("  where it goes (phone + emulator timestamps; floor subtracted where there is one):")
        for name, values in lat["stages"].items():
            floor = trace.FLOORS.get(name, 0.0)
            print("    " + report(f"{name:<12}" + (f" - {floor:.0f}" if floor else "      "),
                                  [v - floor for v in values]))
        print("  to_llm and to_tts split inside the call server:")
        for name, values in lat["inside"].items():
            print("    " + report(f"{name:<52}", values))
        print("  the call server's own figures (from speech_final arrival):")
        for name, values in lat["figures"].items():
            print("    " + report(f"{name:<19}", values))
        for name, values in lat["lags"].items():
            print(report(f"event-loop lag, {name}", values))
        print(cpu_report(lat))
        print(gc_report(lat))
        barge = await measure_barge_in(calls, max(2, turns // 3))
        print(report("barge-in, server (speech detected -> clear sent)", barge["server"]))
        print(report("barge-in, phone (interrupting word complete -> clear received)", barge["after_word"]))
        print(report("barge-in, phone (first speech frame -> clear received)", barge["phone"]))
        for name, values in barge["lags"].items():
            print("  " + report(f"during the barge-in run, event-loop lag, {name}", values))
        print("  during the barge-in run, " + cpu_report(barge))
        print("  during the barge-in run, " + gc_report(barge))


def phone_runner() -> asyncio.Runner:
    """The phone network's loop: uvloop as the emulators run (less lag), or with
    BENCH_PHONE_SLOW_CALLBACKS set asyncio's debug loop naming every callback that held it > 20 ms."""
    if os.environ.get("BENCH_PHONE_SLOW_CALLBACKS"):
        import logging

        logging.basicConfig(level=logging.WARNING)
        runner = asyncio.Runner(debug=True)
        runner.get_loop().slow_callback_duration = 0.02
        return runner
    from dialer.runtime import loop_factory

    return asyncio.Runner(loop_factory=loop_factory())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--calls", default="1,50", help="comma-separated concurrent call counts")
    args = parser.parse_args()
    with phone_runner() as runner:
        runner.run(main([int(c) for c in args.calls.split(",")], args.turns))
