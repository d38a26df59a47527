"""Capacity: many concurrent calls, gaps in agent audio mid-utterance, event-loop lag and memory per call.

    .venv/bin/python bench/capacity.py [--calls 100] [--turns 3]

Every callee asks for a long explanation (a multi-phrase reply of about 10 s of speech), so the agent's
audio must keep flowing phrase after phrase while all other calls do the same. A gap is a run of silent
playout frames (the phone emulator had nothing to play) that starts inside agent audio and is followed
by more agent audio within 500 ms without a `clear`: the callee would hear a hole in the sentence. How
much audio was still buffered when each later phrase's audio arrived tells how close it came to one.
Event-loop lag and RSS are sampled inside the call server process (see bench/server_proc.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency
from figures import pct

from sim.audio import FRAME_BYTES
from sim.scenarios import Scenario
from sim.scenarios.steps import hangup, pause, say, wait_for_agent
from sim.twilio import playout

MAX_GAP_FRAMES = 25  # 500 ms: longer silences are turn boundaries, not holes in a sentence

gaps: list[int] = []
"""Length (frames) of every mid-utterance hole, over all calls."""
slack_ms: list[float] = []
"""Agent audio still buffered at the phone when a later phrase's audio began to arrive (ms): how close the
line came to a hole. The TTS emulator sends a phrase's audio at once (no real-time pacing here), so a new
phrase is a push after more than ``PHRASE_PAUSE_S`` without one."""
PHRASE_PAUSE_S = 0.005


def _instrument_playout() -> None:
    """Wrap Playout.take/clear to find holes in the agent audio (measurement only, same behaviour)."""
    take, clear, push = playout.Playout.take, playout.Playout.clear, playout.Playout.push_audio

    def timing_push(self: Any, data: bytes) -> Any:
        now = time.monotonic()
        if data and self.queued_bytes and now - self.__dict__.get("_last_push", 0.0) > PHRASE_PAUSE_S:
            slack_ms.append(self.queued_bytes / 8)
        self.__dict__["_last_push"] = now
        return push(self, data)

    def counting_take(self: Any, n: int) -> Any:
        audio, real, marks = take(self, n)
        state = self.__dict__.setdefault("_gap", {"in_audio": False, "silent": 0})
        if real >= n:
            if state["in_audio"] and 0 < state["silent"] <= MAX_GAP_FRAMES:
                gaps.append(state["silent"])
            state["in_audio"], state["silent"] = True, 0
        elif state["in_audio"]:
            state["silent"] += 1  # a silent or partial frame: the audio ran out
            if state["silent"] > MAX_GAP_FRAMES:
                state["in_audio"], state["silent"] = False, 0
        return audio, real, marks

    def resetting_clear(self: Any) -> Any:
        self.__dict__["_gap"] = {"in_audio": False, "silent": 0}
        return clear(self)

    playout.Playout.take = counting_take  # type: ignore[method-assign]
    playout.Playout.clear = resetting_clear  # type: ignore[method-assign]
    playout.Playout.push_audio = timing_push  # type: ignore[method-assign]


def explainer(turns: int) -> Scenario:
    steps: list[Any] = [pause(1500)]
    for i in range(turns):
        steps += [say(f"Can you explain the process again, part {i + 1}?"), wait_for_agent(silence_ms=900)]
    return Scenario("explainer", [*steps, hangup()], ring_ms=500)


async def main(calls: int, turns: int) -> None:
    _instrument_playout()
    t0 = time.perf_counter()
    async with latency.rig(lambda _: explainer(turns)) as rig:
        done = await rig.calls(calls, timeout_s=900)
    elapsed = time.perf_counter() - t0
    stats = rig.server_stats
    agent_frames = sum(len(c.line.outbound_track) // FRAME_BYTES for c in done if c.line is not None)
    heard_words = sum(len(c.log.heard) for c in done)
    completed = sum(1 for c in done if c.status == "completed")
    print(f"{calls} concurrent calls x {turns} long replies ({elapsed:.0f} s): {completed} completed, "
          f"{heard_words} agent words heard, {agent_frames} playout frames")
    print(f"mid-utterance gaps in agent audio: {len(gaps)}"
          + (f" (total {sum(gaps) * 20} ms, longest {max(gaps) * 20} ms)" if gaps else ""))
    if slack_ms:
        print("agent audio still buffered at the phone when a later phrase's audio came: "
              f"min {min(slack_ms):.0f} ms, p1 {pct(slack_ms, 0.01):.0f} ms, p50 {pct(slack_ms, 0.5):.0f} ms "
              f"(n={len(slack_ms)})")
    print(latency.report("call-server event-loop lag", stats.get("loop_lag_ms", [])))
    print(latency.report("phone emulator event-loop lag", rig.phone_lag_ms))
    print(latency.report("provider emulators event-loop lag", rig.trace.provider_lag_ms))
    print(latency.cpu_report({"cpu": rig.cpu_per_call_second(), "call_seconds": rig.call_seconds}))
    rss: list[tuple[int, float]] = [tuple(x) for x in stats.get("rss", [])]  # type: ignore[misc]
    if rss:
        idle = [mb for live, mb in rss if live == 0]
        base = idle[0] if idle else rss[0][1]
        peak_live = max(live for live, _ in rss)
        at_peak = max(mb for live, mb in rss if live == peak_live)
        print(f"call-server RSS: {base:.0f} MB idle, {at_peak:.0f} MB with {peak_live} live calls -> "
              f"{(at_peak - base) / max(peak_live, 1) * 1024:.0f} KB per call")
    gaps_ms = [g * 20 for g in gaps]
    overhead = [end - start - latency.FLOOR_MS for c in done for start, end in c.log.response_gaps]
    print(latency.report("voice-to-voice overhead above floor under this load", overhead))
    if gaps_ms:
        print(latency.report("gap length", [float(g) for g in gaps_ms]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    with latency.phone_runner() as runner:
        runner.run(main(args.calls, args.turns))
