"""Hold for me (Call.options["bridge"]): once a person picks up after the hold queue, ring the owner and
join them to the callee, or carry on if the owner does not answer.

Why a conference and not `<Dial>` on the callee's leg: `<Dial>` would replace the callee's TwiML the
moment the owner's phone starts ringing, so the callee would hear ringback and, if the owner never picks
up, the agent would have lost the stream it needs to carry on. Instead the owner's leg is a second REST
call whose TwiML puts it in a conference room named after the call; only once Twilio reports that leg
answered (in-progress) is the callee's leg moved into the same room, with endConferenceOnExit on both so
either hanging up ends the bridge. Until then the agent keeps the callee's stream and the callee hears
the agent. The owner's leg status is polled over REST (about once a second, bounded by the ring timeout)
rather than adding another webhook route: one fetch per second for under a minute is well within
Twilio's limits, and it works from any call server process.

Turned on mid-call (the live card's button, CallCommand "bridge"): with a person on the line right now
(not on hold, no menu, no voicemail, and they have spoken), the owner is rung at once, after the agent's
current sentence: the owner pressed the button because they want that person, and "the next person after
a hold" may never come. Otherwise (menu, hold, nobody yet) it waits, as when set before dialing, for the
person who picks up after the hold.

With RECORDING_ENABLED the agent stays on the bridged call as a listener: the callee's leg moves to the
room with a listen-only fork of both its tracks (shared.twiml.listen_then_conference_twiml), so the
transcript goes on with the callee's and the owner's words (callserver.bridge_transcript) until the call
ends. Without recording nobody consented to that, so the agent leaves the call at the join.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from callserver.bridge_transcript import BridgeTranscript
from shared.twiml import LISTEN_MODE, conference_twiml, listen_then_conference_twiml

if TYPE_CHECKING:
    from callserver.session import CallSession
    from callserver.twilio_stream import MediaStream

CONNECTING_LINE = "Thank you! Let me connect you with the person I'm calling for. One moment, please."
OWNER_ANNOUNCE = "A person is on the line for your call. Connecting you now."
TURNED_ON_NOTE = ("[The person you call for asked to be connected to a person here. If a person answers, "
                  "the call system connects them; you say nothing about it until then.]")
BRIDGED_REASON = "bridged to the owner"
NO_ANSWER_NOTE = ("[The person you call for did not pick up, so they will not join. Tell the person on the "
                  "line briefly that you will carry on yourself, then continue with the task.]")
POLL_S = 1.0
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


class Bridge:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.enabled = bool(session.info.options.get("bridge")) and bool(session.owner_number)
        self.state = "armed" if self.enabled else "off"
        """off | armed | ringing | joined | no_answer"""
        self._holds_seen = 0
        self._person_turns = 0
        """Callee turns that a person said since the last hold, menu or voicemail."""
        self.owner_sid = ""
        self.transcript = BridgeTranscript(session)

    @property
    def room(self) -> str:
        return f"dialer-call-{self.s.info.call_id}"

    @property
    def joined(self) -> bool:
        """The callee is with the owner: the agent only listens (no replies, no hold/menu logic)."""
        return self.state == "joined"

    @staticmethod
    def is_fork(stream: MediaStream) -> bool:
        return stream.custom_parameters.get("mode") == LISTEN_MODE or "outbound" in stream.tracks

    def turn_on(self) -> None:
        """The owner pressed "Ring me when a human answers" during the call."""
        s = self.s
        if self.state in ("armed", "ringing", "joined"):
            return
        if not s.owner_number:
            raise ValueError("no callback number in your profile: set it with /profile callback <number>")
        self.enabled = True
        if self._person_turns and self._person_now():
            self.state = "ringing"
            s._spawn(self._ring_after_reply())
            return
        self.state = "armed"
        self._holds_seen = len(s.hard.holds)
        s.history.add_note(TURNED_ON_NOTE, source="system")
        s.log.action("bridge", stage="armed", by="owner")

    def _person_now(self) -> bool:
        hard = self.s.hard
        return hard.hold is None and not hard.ivr.active and hard.voicemail.state == "idle"

    def on_turn(self, text: str) -> bool:
        """A finished callee turn; True when it is the person who picked up after the hold and the owner
        is rung now (the agent says its connecting line instead of an LLM reply)."""
        holds = len(self.s.hard.holds)
        after_hold, self._holds_seen = holds > self._holds_seen, holds
        if after_hold:
            self._person_turns = 0
        if self._person_now():
            self._person_turns += 1
        if self.state != "armed" or not after_hold or self.s.hard.hold is not None:
            return False
        self.state = "ringing"
        self.s.history.add_user(text)  # the agent knows what the person said if it has to carry on
        self.s._spawn(self._ring())
        return True

    async def _ring_after_reply(self) -> None:
        reply = self.s._reply
        if reply is not None and not reply.done():
            await asyncio.wait({reply})  # the agent's sentence is not cut for the connecting line
        await self._ring()

    async def _ring(self) -> None:
        s = self.s
        settings = s.settings
        s.log.action("bridge", stage="ringing", number=s.owner_number)
        s._start_reply(say=CONNECTING_LINE)
        answered = False
        try:
            self.owner_sid = await s.telephony.call_with_twiml(
                to=s.owner_number, twiml=conference_twiml(self.room, OWNER_ANNOUNCE, end_on_exit=True),
                timeout_s=settings.bridge_ring_timeout_s, caller_id=settings.twilio_from_number)
            answered = await self._wait_answer(settings.bridge_ring_timeout_s + 10)
        except Exception as exc:  # the owner's phone is unreachable: the agent still has the call
            logger.bind(call_id=s.info.call_id).warning("ringing the owner failed: {!r}", exc)
        if answered:
            await self._join()
        else:
            await self._carry_on()

    async def _wait_answer(self, limit_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while loop.time() < deadline:
            status = await self.s.telephony.fetch_status(self.owner_sid)
            if status == "in-progress":
                return True
            if status in FINAL:
                return False
            await asyncio.sleep(POLL_S)
        return False

    async def _join(self) -> None:
        s = self.s
        self.state = "joined"
        await s.wait_played()  # the connecting line is heard whole before the callee's leg moves
        s.log.action("bridge", stage="joined", room=self.room)
        s.log.status("transferring", detail=s.owner_number)
        if not s.settings.recording_enabled:
            await s.telephony.update_twiml(s.info.twilio_sid, conference_twiml(self.room, end_on_exit=True))
            s.end(BRIDGED_REASON)
            return
        # The session lives on until the call ends, as a listener: that is still why it ended.
        s.ended_reason = s.ended_reason or BRIDGED_REASON
        await s.telephony.update_twiml(s.info.twilio_sid, listen_then_conference_twiml(
            s.settings, s.info.call_id, self.room, end_on_exit=True))

    async def _carry_on(self) -> None:
        s = self.s
        self.state = "no_answer"
        if self.owner_sid:
            await s.telephony.hangup(self.owner_sid)  # stop a phone still ringing past our patience
        s.log.action("bridge", stage="no_answer", number=s.owner_number)
        s.history.add_note(NO_ANSWER_NOTE, source="system")
        if s._reply is not None and not s._reply.done():
            await asyncio.wait({s._reply})
        s._start_reply(timer=None)
