"""Conference rooms: `<Dial><Conference>name</Conference></Dial>` joins a call's line to a named room that
mixes the participants' audio (twilio.com/docs/voice/twiml/conference).

Each leg's callee audio (what that phone's person says) is played to every other leg, frame by frame on
the network clock, so a person on one leg hears the person on the other as on a real bridge. Each leg ticks
on its own task, so a leg may play its next frame just before the other leg hands it over: like a real
bridge's jitter buffer, 80 ms of silence is queued while nobody speaks whenever a leg's queue ran dry, so
that a few late ticks (a busy machine) never cut a gap into a word. A room is
created by its first participant and ends when the last leaves; `endConferenceOnExit` on a participant
ends it (every other leg's `<Dial>` returns) when that participant leaves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sim.audio import FRAME_BYTES, MULAW_SILENCE

CUSHION = bytes([MULAW_SILENCE]) * FRAME_BYTES * 4

if TYPE_CHECKING:
    from sim.twilio.line import Line
    from sim.twilio.mouth import FrameOut


@dataclass
class Participant:
    call_sid: str
    line: Line
    end_on_exit: bool = False


class _Tap:
    """Sink of one leg's line: its callee's audio goes to the other legs."""

    def __init__(self, room: Room, me: Participant) -> None:
        self.room = room
        self.me = me

    def on_inbound(self, frame: FrameOut) -> None:
        for other in self.room.participants:
            if other is not self.me and not other.line.stopped:
                if not frame.speech and other.line.playout.empty():
                    other.line.play_to_callee(CUSHION)
                other.line.play_to_callee(frame.audio)


@dataclass
class Room:
    name: str
    participants: list[Participant] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    joined: list[tuple[str, float]] = field(default_factory=list)
    """(call sid, network ms) of every join, for tests."""

    async def join(self, call_sid: str, line: Line, ended: asyncio.Event, end_on_exit: bool) -> None:
        """Stay in the room until this call ends or the conference does."""
        me = Participant(call_sid, line, end_on_exit)
        self.participants.append(me)
        self.joined.append((call_sid, line.now_ms()))
        line.sink = _Tap(self, me)
        try:
            waits = [asyncio.create_task(ended.wait()), asyncio.create_task(self.ended.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
        finally:
            if isinstance(line.sink, _Tap) and line.sink.me is me:
                line.sink = None
            self.participants.remove(me)
            if me.end_on_exit or not self.participants:
                self.ended.set()
