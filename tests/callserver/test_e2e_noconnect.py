"""End to end, real SDKs against sim/: calls that never connect end with their status and no session."""

from __future__ import annotations

import pytest

from shared import events


@pytest.mark.parametrize(("number", "status", "outcome"), [
    ("+12125550104", "busy", "busy"), ("+12125550105", "no-answer", "no_answer")])
async def test_call_that_never_connects_ends_with_its_status(call_stack, number: str, status: str,  # type: ignore[no-untyped-def]
                                                            outcome: str) -> None:
    async with call_stack(speed=60) as stack:
        call_id = await stack.place_call(number, "Confirm the appointment on Tuesday at 3 pm.")
        call = await stack.wait_end(call_id, timeout_s=20)
        assert call.status == status and call.outcome == outcome and call.ended_at is not None
        statuses = [e.status for e in stack.of(call_id, events.CALL_STATUS)]
        assert statuses[0] == "dialing" and statuses[-1] == status
        assert len(stack.of(call_id, events.CALL_ENDED)) == 1
        assert stack.registry.active_count() == 0 and call_id not in stack.registry.calls
