from __future__ import annotations

import asyncio

from shared.bus import EventBus, InProcessBus, RedisBus
from shared.events import CALL_COMMAND, CALL_TRANSCRIPT, CallCommand, TranscriptLine


async def _exercise(bus: EventBus) -> None:
    async with bus.subscribe(CALL_TRANSCRIPT) as a, bus.subscribe(CALL_TRANSCRIPT, CALL_COMMAND) as b:
        for seq in range(50):
            line = TranscriptLine(call_id=1, seq=seq, speaker="callee", text=f"l{seq}")
            await bus.publish(CALL_TRANSCRIPT, line)
        await bus.publish(CALL_COMMAND, CallCommand(call_id=1, kind="say", text="hello"))
        got_a = [(await a.get(timeout=5))[1] for _ in range(50)]
        got_b = [(await b.get(timeout=5)) for _ in range(51)]
    assert [e.seq for e in got_a] == list(range(50))  # type: ignore[attr-defined]
    assert got_b[-1] == (CALL_COMMAND, CallCommand(call_id=1, kind="say", text="hello", at=got_b[-1][1].at))
    assert [e.seq for _, e in got_b[:50]] == list(range(50))  # type: ignore[attr-defined]
    # a subscriber only sees what is published after it subscribed
    async with bus.subscribe(CALL_TRANSCRIPT) as late:
        await bus.publish(CALL_TRANSCRIPT, TranscriptLine(call_id=2, seq=0, speaker="agent", text="new"))
        _topic, event = await late.get(timeout=5)
        assert event.call_id == 2  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        assert late.queue.empty()


async def test_in_process_bus_fans_out_in_order() -> None:
    await _exercise(InProcessBus())


async def test_redis_bus_fans_out_in_order(redis_url: str) -> None:
    bus = RedisBus(redis_url, prefix="dialer-test:")
    try:
        await _exercise(bus)
    finally:
        await bus.close()
