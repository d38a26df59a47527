"""Voice-to-voice latency and barge-in reaction, measured from the phone emulator's side.

    .venv/bin/python bench/latency.py [--turns 10] [--calls 1,50]

The emulated providers run at fixed latencies (Deepgram endpointing 300 ms, LLM first token 250 ms,
ElevenLabs first byte 150 ms): their sum is the provider floor. For every callee turn the phone
emulator logs (callee's last speech frame, first agent audio frame received); the gap minus the floor
is our overhead. Barge-in: the phone logs (first callee speech frame over agent audio, `clear`
received); the call server itself logs speech detected -> `clear` sent (barge_in_ms).

The call server runs in its own process (`--serve` mode of this file: the real app under uvicorn plus
an event-loop lag probe and an RSS sampler), as in production; the emulators and the measuring run here.
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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import select  # noqa: E402

from shared.config import Settings, load_settings  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.migrate import upgrade_async  # noqa: E402
from shared.models import Call, CallEvent  # noqa: E402
from shared.twilio_api import Telephony  # noqa: E402
from sim.__main__ import EmulatorStack  # noqa: E402
from sim.llm_script import ScriptedBrain  # noqa: E402
from sim.scenarios import Scenario  # noqa: E402
from sim.scenarios.steps import hangup, interrupt_after, pause, say, wait_for_agent  # noqa: E402

ENDPOINTING_MS, LLM_TTFT_MS, TTS_TTFB_MS = 300, 250, 150
FLOOR_MS = ENDPOINTING_MS + LLM_TTFT_MS + TTS_TTFB_MS
NUMBER = "+12125550160"
SHORT = "Okay, got it."
LONG = ("Sure, let me explain how this works: I will check the appointment time, then confirm the "
        "address with you, and finally send a reminder message the day before the visit.")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def talker(turns: int) -> Scenario:
    steps: list[Any] = [pause(1500)]  # the product drops audio sent before its STT socket is up
    for i in range(turns):
        steps += [say(f"This is question number {i + 1}, could you please confirm it for me?"),
                  wait_for_agent(silence_ms=700)]
    return Scenario("talker", [*steps, hangup()], ring_ms=500)


def interrupter(turns: int) -> Scenario:
    steps: list[Any] = [pause(1500)]
    for i in range(turns):
        steps += [say(f"Please explain the process, part {i + 1}."),
                  interrupt_after(1200, "Hold on, hold on, one question."), wait_for_agent(silence_ms=700)]
    return Scenario("interrupter", [*steps, hangup()], ring_ms=500)


def brain() -> ScriptedBrain:
    from sim.llm_script import Rule

    return ScriptedBrain([Rule(user="explain the process", say=LONG)], default=SHORT)


@contextlib.asynccontextmanager
async def rig(scenario: Scenario, *, extra_env: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    """Emulators here, the call server in a child process; yields a Rig that places calls."""
    stack = EmulatorStack(speed=1.0, brain=brain(), llm_ttft_s=LLM_TTFT_MS / 1000, llm_tokens_per_s=2000,
                          with_telegram=False)
    stack.elevenlabs.ttfb_s = TTS_TTFB_MS / 1000
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        async with stack.running():
            stack.network.attach(NUMBER, scenario)
            port = free_port()
            env = {**os.environ, **stack.env(), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                   "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "LOG_LEVEL": "WARNING",
                   "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs",
                   "DEEPGRAM_ENDPOINTING_MS": str(ENDPOINTING_MS), "MAX_CONCURRENT_CALLS": "500",
                   "STATS_FILE": f"{tmp}/stats.json", **(extra_env or {})}
            fields = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
            settings = load_settings(**fields)
            await upgrade_async(settings.database_url)
            child = await asyncio.to_thread(subprocess.Popen, [sys.executable, __file__, "--serve"], env=env,
                                            cwd=tmp)
            db = Database(settings.database_url)
            rig_ = Rig(stack, settings, db, Telephony(settings), child, Path(env["STATS_FILE"]))
            try:
                await rig_.wait_ready(port)
                yield rig_
            finally:
                await rig_.stop()
                await rig_.telephony.close()
                await db.close()


class Rig:
    def __init__(self, stack: EmulatorStack, settings: Any, db: Database, telephony: Telephony,
                 child: subprocess.Popen[bytes], stats_file: Path) -> None:
        self.stack, self.settings, self.db, self.telephony = stack, settings, db, telephony
        self.child, self.stats_file = child, stats_file
        self.server_stats: dict[str, Any] = {}

    async def wait_ready(self, port: int) -> None:
        for _ in range(300):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("call server did not start")

    async def calls(self, n: int, timeout_s: float = 600) -> list[Any]:
        """Place `n` calls at once (100 ms apart, as a burst of real dialing would be) and wait for all."""
        ids = []
        async with self.db.session() as s:
            for _ in range(n):
                call = Call(to_number=NUMBER, from_number=self.settings.twilio_from_number, task="bench",
                            system_prompt="You are a test agent.", opening_line="Hi.", status="created")
                s.add(call)
                await s.flush()
                ids.append(call.id)
            await s.commit()
        sids = []
        for call_id in ids:
            sids.append(await self.telephony.place_call(to=NUMBER, call_id=call_id, record=False,
                                                        time_limit_s=600))
            await asyncio.sleep(0.1)
        net = self.stack.network
        await asyncio.gather(*(net.wait_for_end(sid, timeout_s) for sid in sids))
        await self._wait_stored(ids)
        return [net.calls[sid] for sid in sids]

    async def _wait_stored(self, ids: list[int], timeout_s: float = 60) -> None:
        # The call server's end-of-call work (summary) finishes after the phone hangs up.
        async with asyncio.timeout(timeout_s):
            while True:
                async with self.db.session() as s:
                    rows = (await s.exec(select(Call).where(Call.id.in_(ids)))).all()  # type: ignore[union-attr]
                if all(row.ended_at is not None and row.outcome for row in rows):
                    return
                await asyncio.sleep(0.2)

    async def server_barge_ins(self) -> list[float]:
        async with self.db.session() as s:
            rows = (await s.exec(select(CallEvent).where(CallEvent.type == "turn_metrics"))).all()
        return [float(r.payload["barge_in_ms"]) for r in rows if "barge_in_ms" in r.payload]

    async def stop(self) -> None:
        self.child.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.child.wait, 30)
        if self.stats_file.exists():
            self.server_stats = json.loads(self.stats_file.read_text())


def report(title: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"{title}: no samples"
    return (f"{title}: p50 {pct(values, 0.5):.1f} {unit}, p99 {pct(values, 0.99):.1f} {unit}, "
            f"max {max(values):.1f} {unit} (n={len(values)})")


async def measure_latency(calls: int, turns: int) -> dict[str, Any]:
    async with rig(talker(turns)) as r:
        done = await r.calls(calls)
    gaps = [end - start for call in done for start, end in call.log.response_gaps]
    return {"gaps": gaps, "overhead": [g - FLOOR_MS for g in gaps], "server": r.server_stats}


async def measure_barge_in(calls: int, turns: int) -> dict[str, Any]:
    async with rig(interrupter(turns)) as r:
        done = await r.calls(calls)
        server = await r.server_barge_ins()
    phone = [clear - start for call in done for start, clear in call.log.barge_ins]
    return {"phone": phone, "server": server}


async def main(calls_list: list[int], turns: int) -> None:
    print(f"provider floor: endpointing {ENDPOINTING_MS} + LLM first token {LLM_TTFT_MS} + TTS first byte "
          f"{TTS_TTFB_MS} = {FLOOR_MS} ms")
    for calls in calls_list:
        t0 = time.perf_counter()
        lat = await measure_latency(calls, turns)
        print(f"\n== {calls} concurrent call(s), {turns} turns each ({time.perf_counter() - t0:.0f} s)")
        print(report("voice-to-voice", lat["gaps"]))
        print(report("overhead above floor", lat["overhead"]))
        lag = lat["server"].get("loop_lag_ms", [])
        print(report("call-server event-loop lag", lag))
        barge = await measure_barge_in(calls, max(2, turns // 3))
        print(report("barge-in, server (speech detected -> clear sent)", barge["server"]))
        print(report("barge-in, phone (first speech frame -> clear received)", barge["phone"]))


# --- child mode: the call server with probes ------------------------------------------------------

async def serve_with_probes() -> None:
    import uvicorn

    from callserver.app import create_app
    from dialer.runtime import storage
    from shared.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.secrets())
    lag: list[float] = []
    rss: list[tuple[int, float]] = []
    async with storage(settings) as (db, bus):
        app = create_app(settings, bus=bus, db=db)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                               access_log=False, ws_ping_interval=None))

        async def probe() -> None:
            # A 5 ms sleep that wakes late measures how long something else held the loop.
            loop = asyncio.get_running_loop()
            ticks = 0
            while True:
                start = loop.time()
                await asyncio.sleep(0.005)
                registry = getattr(app.state, "registry", None)
                live = registry.active_count() if registry else 0
                if live:  # start-up (imports, provider clients) is not what this measures
                    lag.append((loop.time() - start - 0.005) * 1000)
                ticks += 1
                if ticks % 20 == 0:
                    rss.append((live, _rss_mb()))

        # Our own SIGTERM handler: uvicorn's re-raises the signal after shutdown, before stats are saved.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, setattr, server, "should_exit", True)
        task = asyncio.create_task(probe())
        await server.serve()
        task.cancel()
    stats = json.dumps({"loop_lag_ms": lag, "rss": rss})
    await asyncio.to_thread(Path(os.environ["STATS_FILE"]).write_text, stats)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--calls", default="1,50", help="comma-separated concurrent call counts")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_with_probes())
    else:
        asyncio.run(main([int(c) for c in args.calls.split(",")], args.turns))
