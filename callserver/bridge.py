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
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from shared.twiml import conference_twiml

if TYPE_CHECKING:
    from callserver.session import CallSession

CONNECTING_LINE = "Thank you! Let me connect you with the person I'm calling for. One moment, please."
OWNER_ANNOUNCE = "A person is on the line for your call. Connecting you now."
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
        self.owner_sid = ""

    @property
    def room(self) -> str:
        return f"dialer-call-{self.s.info.call_id}"

    def on_turn(self, text: str) -> bool:
        """A finished callee turn; True when it is the person who picked up after the hold and the owner
        is rung now (the agent says its connecting line instead of an LLM reply)."""
        holds = len(self.s.hard.holds)
        after_hold, self._holds_seen = holds > self._holds_seen, holds
        if self.state != "armed" or not after_hold or self.s.hard.hold is not None:
            return False
        self.state = "ringing"
        self.s.history.add_user(text)  # the agent knows what the person said if it has to carry on
        self.s._spawn(self._ring())
        return True

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
        await s.telephony.update_twiml(s.info.twilio_sid, conference_twiml(self.room, end_on_exit=True))
        s.end("bridged to the owner")

    async def _carry_on(self) -> None:
        s = self.s
        self.state = "no_answer"
        if self.owner_sid:
            await s.telephony.hangup(self.owner_sid)  # stop a phone still ringing past our patience
        s.log.action("bridge", stage="no_answer", number=s.owner_number)
        s.history.add_note(NO_ANSWER_NOTE)
        if s._reply is not None and not s._reply.done():
            await asyncio.wait({s._reply})
        s._start_reply(timer=None)
