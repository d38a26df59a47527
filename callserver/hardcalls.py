"""The hard parts of real calls, for one CallSession: IVR menus, keypad digits, hold queues, voicemail,
time limits and dead air.

The session hands this object every inbound frame (``on_media``), every STT event before turn-taking
(``filter``), every finished callee turn (``on_turn``: True means handled here, the LLM is not asked),
inbound keypad digits and AMD results. Decisions that must not wait for (or pay for) an LLM round trip
are taken here, deterministically: staying silent on hold, leaving the voicemail after the beep, ending
at the time limit. Everything it does is published through the CallLog as actions, so the chat shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from callserver import audio, voicemail
from callserver.dtmf import normalise, tones
from callserver.hold import HOLD_NOTE, Hold, held_note, is_hold_phrase, sounds_human
from callserver.ivr import MENU_NOTE, IvrGate
from callserver.limits import Limit, SilenceMeter
from callserver.playback import Utterance
from callserver.stt.base import SttEvent
from shared.twiml import play_digits_then_stream

if TYPE_CHECKING:
    from callserver.session import CallSession

BATCH_FRAMES = 25
"""Frames (500 ms) whose audio checks run in one numpy pass: per frame, numpy's call overhead was the cost.
Nothing waits on them meanwhile: dead air is reported after 30 s and a beep only matters once the voicemail
drop is armed, when every frame is checked as it comes."""

TIME_UP_LINE = ("I'm sorry, I've reached the time limit for this call and have to hang up now. "
                "Thank you for your help. Goodbye.")


class HardCalls:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        settings = session.settings
        self.clock_ms = 0.0
        """Call time: ms of inbound audio received over all of the call's streams."""
        self.ivr = IvrGate()
        self.hold: Hold | None = None
        self.recordings: list[list[str]] = []
        """Announcements heard on hold, kept across holds: a loop recognised once stays recognised."""
        self.holds: list[tuple[float, float]] = []
        """(start, end) of past holds on the media clock."""
        self.voicemail = voicemail.VoicemailDrop()
        self.beeps = voicemail.BeepDetector()
        """Fed only once a voicemail drop is armed: ``unjudged`` keeps the audio before that."""
        self.unjudged = voicemail.UnjudgedAudio()
        self.silence = SilenceMeter()
        self.call_limit = Limit.with_goodbye("call", settings.max_call_minutes * 60_000.0)
        self.hold_limit = Limit("hold", settings.max_hold_minutes * 60_000.0)
        self.digits_mode = str(session.info.options.get("dtmf_mode") or settings.dtmf_mode)
        self._frames: list[bytes] = []
        """Inbound frames not yet checked (at most BATCH_FRAMES); ``clock_ms`` already counts them."""
        self._limits_due_ms = 0.0
        """Media clock before which no limit can be due: the per-frame check is one comparison."""

    # --- audio ------------------------------------------------------------------------------------
    def on_media(self, frame: bytes) -> None:
        self.clock_ms += len(frame) / audio.BYTES_PER_MS
        self._frames.append(frame)
        if len(self._frames) >= BATCH_FRAMES or self.voicemail.state == "armed":
            self.check_audio()
        if self.clock_ms >= self._limits_due_ms:
            self._check_limits()

    def check_audio(self) -> None:
        """Dead air and beeps over the frames received since the last check, as if checked one by one.

        Called before any change of state they depend on (hold, voicemail), so each frame is judged in
        the state it arrived in."""
        frames, self._frames = self._frames, []
        if not frames:
            return
        frame_levels = audio.levels(frames)
        frames_ms = [len(f) / audio.BYTES_PER_MS for f in frames]
        silent = self.silence.feed_levels(frame_levels.tolist(), frames_ms)
        if silent is not None:
            self.s.log.action("silence", seconds=round(silent / 1000), on_hold=self.hold is not None)
        if self.hold is not None:
            return
        if self.voicemail.state == "idle":
            self.unjudged.add(frames, frames_ms, frame_levels, self.clock_ms)  # judged if a drop is armed
        elif self.voicemail.state == "armed":
            self._check_beeps(frames, voicemail.tonal_frames(frames, frame_levels))

    def _check_beeps(self, frames: list[bytes], tonal: np.ndarray) -> None:
        """Armed: feed the beep detector frame by frame and leave the message as soon as it is ready."""
        now_ms = self.clock_ms - sum(len(f) for f in frames) / audio.BYTES_PER_MS
        for frame, is_tonal in zip(frames, tonal.tolist(), strict=True):
            frame_ms = len(frame) / audio.BYTES_PER_MS
            now_ms += frame_ms
            self.beeps.feed_tonal(frame_ms, is_tonal, now_ms)
            if self.voicemail.ready(self.beeps, now_ms):
                self.leave_voicemail()
                return

    def _check_limits(self) -> None:
        try:
            self._limits()
        finally:
            due = self.call_limit.next_due_ms
            if self.hold is not None:
                due = min(due, self.hold.since_ms + self.hold_limit.next_due_ms)
            self._limits_due_ms = due

    def _limits(self) -> None:
        due = self.call_limit.check(self.clock_ms)
        if due == "warn":
            left = self.call_limit.left_s(self.clock_ms)
            self.s.log.action("limit_warning", limit="call", seconds_left=left)
            self.s.history.add_note(f"[About {left} seconds are left on this call: wrap up now.]",
                                    source="system")
        elif due == "end":
            self.s.log.action("limit_reached", limit="call")
            self._soon(lambda: self._time_up("max call time reached"))
        if self.hold is None:
            return
        held = self.clock_ms - self.hold.since_ms
        due = self.hold_limit.check(held)
        if due == "warn":
            self.s.log.action("limit_warning", limit="hold", seconds_left=self.hold_limit.left_s(held))
        elif due == "end":
            self.s.log.action("limit_reached", limit="hold", held_s=round(held / 1000))
            self._soon(lambda: self.s.hang_up("max hold time reached"))

    async def _time_up(self, reason: str) -> None:
        if self.hold is not None or self.voicemail.state != "idle":
            await self.s.hang_up(reason)  # nobody is listening: no goodbye to say
            return
        await self.s._interrupt_if_speaking()
        self.s._start_reply(say=TIME_UP_LINE, then=lambda: self.s.hang_up(reason))

    # --- listening --------------------------------------------------------------------------------
    def filter(self, event: SttEvent) -> SttEvent:
        return self.ivr.filter(event, self.s.turns.pending_text)

    @property
    def listening_only(self) -> bool:
        """The other side is a recording: it cannot barge in, whatever it says over us."""
        return self.ivr.active or self.hold is not None

    def on_turn(self, text: str) -> bool:
        """A finished callee turn (already in the transcript); True when handled without the LLM."""
        if self.voicemail.state != "idle":
            return True
        if self.hold is not None:
            if self.hold.classify(text) == "recording":
                return True
            self.leave_hold("person")
            return False
        human = sounds_human(text)
        if voicemail.is_greeting(text) and not text.rstrip().endswith("?"):
            # Greetings are recordings of a person ("I can't take your call"), so first-person words do
            # not make them live; a live "do you want to leave a message?" is a question.
            self._arm_voicemail("greeting")
            self.s.log.action("voicemail", stage="greeting heard", text=text)
            return True
        if self.ivr.on_turn(text):
            if self.ivr.menus_heard == 1:
                self.s.history.add_note(MENU_NOTE, source="system")
            return False
        if is_hold_phrase(text) and not human:
            self.enter_hold(f"heard: {text}", by="announcement")
            return True
        if human or text.rstrip().endswith("?"):
            self.ivr.person_spoke()  # menus instruct; a question without menu words is a person's
        return False

    def on_dtmf(self, digit: str) -> None:
        self.s.log.action("dtmf_received", digit=digit)
        self.s.history.add_note(f"[The other side pressed the key {digit} on their keypad.]", source="system")

    # --- hold -------------------------------------------------------------------------------------
    def enter_hold(self, reason: str, by: str) -> None:
        if self.hold is not None:
            return
        self.check_audio()
        since = datetime.now(UTC)
        self.hold = Hold(self.clock_ms, since.isoformat(timespec="seconds"), reason, self.recordings)
        self.hold_limit.warned = self.hold_limit.reached = False
        self.ivr.active = True  # announcements are heard whole, so a repeat is recognised as one
        self._limits_due_ms = 0.0  # the hold limit starts counting
        self.s.history.add_note(HOLD_NOTE, source="system")
        self.s.log.action("on_hold", since=self.hold.since_wall, reason=reason, by=by)

    def leave_hold(self, by: str) -> None:
        hold = self.hold
        if hold is None:
            return
        self.check_audio()
        self.hold = None
        self.ivr.person_spoke()
        held_ms = self.clock_ms - hold.since_ms
        self.holds.append((hold.since_ms, self.clock_ms))
        self.s.history.add_note(held_note(held_ms / 60_000, hold.recordings_heard), source="system")
        self.s.log.action("off_hold", by=by, held_s=round(held_ms / 1000),
                          recordings_skipped=hold.recordings_heard)

    # --- voicemail --------------------------------------------------------------------------------
    def on_amd(self, answered_by: str) -> None:
        if answered_by.startswith("machine") and self._conversed():
            # AMD can be wrong; once a conversation went back and forth, this is no voicemail box.
            self.s.log.action("amd_ignored", answered_by=answered_by)
            return
        self.check_audio()
        if answered_by.startswith("machine_end"):
            self._arm_voicemail("amd")
            self.leave_voicemail()
        elif answered_by == "machine_start":
            self._arm_voicemail("amd")  # greeting still playing: wait for the beep
        elif answered_by == "fax":
            self.s.log.action("fax", detail="a fax machine answered")
            self._soon(lambda: self.s.hang_up("fax machine"))

    def _arm_voicemail(self, by: str) -> None:
        """Judge the audio heard so far for beeps (a beep just before arming counts), then arm the drop."""
        self.check_audio()
        if self.voicemail.state == "idle":
            self.unjudged.judge(self.beeps)
        self.voicemail.arm(self.clock_ms, by)

    def leave_voicemail(self) -> None:
        if self.voicemail.state in ("leaving", "left"):
            return
        self.voicemail.state = "leaving"
        message = voicemail.message_for(self.s.info, self.s.settings)
        self.voicemail.message = message
        self.s.log.action("voicemail", stage="leaving message", by=self.voicemail.by or "amd")
        self._soon(lambda: self._leave(message))

    async def _leave(self, message: str) -> None:
        await self.s._interrupt_if_speaking()
        self.s._start_reply(say=message, then=self._left)

    async def _left(self) -> None:
        self.voicemail.state = "left"
        self.s.log.action("voicemail_left", message=self.voicemail.message)
        await self.s.hang_up(voicemail.LEFT_REASON)

    # --- keypad -----------------------------------------------------------------------------------
    async def press(self, digits: str) -> str:
        """Send keypad digits the configured way; returns what the tool reports to the model."""
        keys = normalise(digits)
        s = self.s
        if self.digits_mode == "rest":
            # Replacing the TwiML ends this media stream: what is still queued would be lost.
            await s.wait_played()
            twiml = play_digits_then_stream(s.settings, s.info.call_id, keys)
            await s.telephony.update_twiml(s.info.twilio_sid, twiml)
            return f"pressed {keys}"
        seg = s.playback.segment(Utterance(), "")
        await s.playback.send(seg, tones(keys))
        seg.done = True
        return f"pressed {keys}"

    def _soon(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run side work on the session's task group, unless the call is already over."""
        if not self.s._ended.is_set():
            self.s._spawn(make())

    def _conversed(self) -> bool:
        return any(m.role == "assistant" and m.text for m in self.s.history.messages)

    def state(self) -> dict[str, Any]:
        return {"ivr": self.ivr.active, "on_hold": self.hold is not None, "voicemail": self.voicemail.state,
                "clock_s": round(self.clock_ms / 1000, 1)}
