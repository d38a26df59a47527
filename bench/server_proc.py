"""The call server as the benchmarks run it: a child process of bench/latency.py (and capacity.py).

The real app under uvicorn on uvloop with GC tuned as ``dialer callserver`` runs it, plus the probes the
benchmark reads back from ``STATS_FILE`` when it stops (SIGTERM): event-loop lag while calls are live, RSS
by live call count, GC pauses and the call-server timestamps of bench/server_probes.py.

    BENCH_SLOW_CALLBACKS=1   asyncio's debug loop instead, naming every callback that held it > 20 ms
    BENCH_NO_GC_TUNING=1     the interpreter's default GC settings (for comparison)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from shared.config import load_settings  # noqa: E402


async def serve_with_probes() -> None:
    import server_probes
    import uvicorn

    from callserver.app import create_app
    from dialer.runtime import storage, tune_gc
    from shared.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.secrets())
    points = server_probes.install()
    gc_pauses = server_probes.watch_gc()
    lag: list[float] = []
    rss: list[tuple[int, float]] = []
    async with storage(settings) as (db, bus):
        app = create_app(settings, bus=bus, db=db)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                               access_log=False, ws_ping_interval=None))

        async def probe() -> None:
            # A 5 ms sleep that wakes late measures how long something else held the loop.
            # perf_counter, not loop.time(): uvloop's loop clock is cached at 1 ms resolution.
            ticks = 0
            while True:
                start = time.perf_counter()
                await asyncio.sleep(0.005)
                registry = getattr(app.state, "registry", None)
                live = registry.active_count() if registry else 0
                if live:  # start-up (imports, provider clients) is not what this measures
                    lag.append((time.perf_counter() - start - 0.005) * 1000)
                ticks += 1
                if ticks % 20 == 0:
                    rss.append((live, _rss_mb()))

        # Our own SIGTERM handler: uvicorn's re-raises the signal after shutdown, before stats are saved.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, setattr, server, "should_exit", True)
        task = asyncio.create_task(probe())
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has only a flag)
            await asyncio.sleep(0.05)
        if not os.environ.get("BENCH_NO_GC_TUNING"):
            tune_gc()  # as dialer.runtime.callserver_part does, once the app has started
        for pauses in gc_pauses.values():
            pauses.clear()  # start-up's collections are not what this measures
        await serving
        task.cancel()
    stats = json.dumps({"loop_lag_ms": lag, "rss": rss, "points": server_probes.dump(points),
                        "gc_pauses_ms": gc_pauses})
    await asyncio.to_thread(Path(os.environ["STATS_FILE"]).write_text, stats)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    from dialer.runtime import raise_priority

    # as `dialer callserver` does, before any thread starts (CALLSERVER_NICE=0 to compare)
    print(f"call server at nice {raise_priority(load_settings().callserver_nice)}", file=sys.stderr)
    if os.environ.get("BENCH_SLOW_CALLBACKS"):
        import logging

        logging.basicConfig(level=logging.WARNING)
        with asyncio.Runner(debug=True) as runner:
            runner.get_loop().slow_callback_duration = 0.02
            runner.run(serve_with_probes())
    else:
        from dialer.runtime import loop_factory

        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # as `dialer callserver` runs
            runner.run(serve_with_probes())
