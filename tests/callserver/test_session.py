"""CallSession end to end through the real call server, the phone emulator's Media Streams and the real
SDKs against sim/: barge-in rewrites the history to the heard words and flags the transcript line."""

from __future__ import annotations

from typing import Any

from callserver.history import INTERRUPTED
from dialer.demo import demo_brain
from shared import events

FULL = "I'm Alex, an AI assistant calling for Sam Lee about the appointment on Tuesday at 3 pm."
POINT = "Of course. Sam Lee's appointment is on Tuesday at 3 pm: does that still work for you?"


async def test_barge_in_rewrites_history_to_heard_words(call_stack: Any) -> None:
    async with call_stack(brain=demo_brain(), speed=4, tts="deepgram") as stack:
        call_id = await stack.place_call("+12125550102", "Confirm the appointment on Tuesday at 3 pm.")
        call = await stack.wait_end(call_id, timeout_s=60)
        lines = stack.of(call_id, events.CALL_TRANSCRIPT)
        cut = [ln for ln in lines if ln.speaker == "agent" and ln.interrupted]
        assert cut, "the interrupting callee cut the agent off"
        assert all(any(r.startswith(ln.text) and ln.text != r for r in (FULL, POINT)) for ln in cut)
        # The next request carries only the heard part of the cut-off answer, marked as interrupted.
        talks = [r.body["messages"] for r in stack.emulators.openai.requests
                 if any(m["role"] == "assistant" for m in r.body["messages"])]
        later = talks[-1]
        said = [m["content"] for m in later if m["role"] == "assistant"]
        # the two answers the callee talked over ("who's this?" twice) are in it as heard, and marked
        assert len(said) >= 2 and all(s.endswith(INTERRUPTED) for s in said[:2])
        assert FULL not in str(later)
        heard = said[0].removesuffix(INTERRUPTED)
        assert FULL.startswith(heard)
        assert call.latency["barge_in_ms"]["p95"] < 50
        assert call.latency["first_audio_ms"]["n"] >= 1
