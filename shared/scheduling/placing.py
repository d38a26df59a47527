"""How a scheduled attempt is placed: the same vetting and dialing as /call, tied to its ScheduledCall."""

from __future__ import annotations

from shared.calls import CallService
from shared.models import ScheduledCall
from shared.scheduling.scheduler import PlaceCall


def place_via(calls: CallService) -> PlaceCall:
    """Each attempt is vetted again (the task policy, capacity) and becomes its own Call row."""
    async def place(row: ScheduledCall) -> int:
        request = await calls.prepare(row.owner_id, row.to_number, row.task)
        call = await calls.place(request, chat_id=row.owner_id, scheduled_call_id=row.id)
        return call.id or 0
    return place
