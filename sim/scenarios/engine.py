"""Runs a callee scenario on a phone line: speaks, listens (decoded agent speech and DTMF), holds, routes.

The line (``sim.twilio.line.Line``) gives the callee what a person on the phone has: the agent's words as
they were actually heard, digits detected in the agent's audio, and a mouth that speaks in real time.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sim.audio import beep, hold_music
from sim.scenarios import steps as s

if TYPE_CHECKING:
    from sim.twilio.line import Line

SPOKEN_DIGITS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "zero": "0"}


class _HungUp(Exception):
    pass


@dataclass
class Scenario:
    name: str
    steps: list[s.Step]
    outcome: str = "answered"
    """answered | busy | no-answer | failed | voicemail."""
    answered_by: str = "human"
    """What answering machine detection concludes: human | machine_start | machine_end_beep | ..."""
    ring_ms: float = 3000
    amd_ms: float = 2500
    pickup_ms: float = 700
    """How long after answering the callee starts: a person lifts the phone to the ear before "Hello?",
    and an IVR's first prompt starts a beat after the answer too."""

    def callee(self, line: Line) -> Callee:
        return Callee(self, line)


@dataclass
class Callee:
    scenario: Scenario
    line: Line
    transcript: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, who, text): who is "callee", "agent" (a finished agent turn), "keys" or "event"."""
    last_agent_turn: str = ""
    collected: list[str] = field(default_factory=list)
    voicemail_message: str | None = None
    greeting_done: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    _word_cursor: int = 0
    _digit_cursor: int = 0

    async def run(self) -> None:
        try:
            await self.line.clock.sleep_ms(self.scenario.pickup_ms)
            await self._steps(self.scenario.steps)
        except _HungUp:
            pass
        finally:
            self.finished = True

    def note(self, who: str, text: str) -> None:
        self.transcript.append((self.line.now_ms(), who, text))

    def _check(self) -> None:
        if self.line.stopped:
            raise _HungUp

    async def _steps(self, steps: list[s.Step]) -> None:
        for step in steps:
            self._check()
            await self._step(step)

    async def _step(self, step: s.Step) -> None:
        match step:
            case s.Say(text=text, rate=rate):
                await self._say(text, rate)
            case s.Pause(ms=ms):
                await self.line.clock.sleep_ms(ms)
            case s.WaitForAgent():
                await self._wait_for_agent(step)
            case s.InterruptAfter():
                await self._interrupt(step)
            case s.Menu():
                await self._menu(step)
            case s.CollectDigits():
                await self._collect(step)
            case s.Hold():
                await self._hold(step)
            case s.Voicemail():
                await self._voicemail(step)
            case s.Hangup():
                self.note("event", "hangup")
                self.line.hangup()
                raise _HungUp
            case s.Branch(pattern=pattern, then=then, otherwise=otherwise):
                hit = re.search(pattern, self.last_agent_turn, re.IGNORECASE) is not None
                await self._steps(then if hit else otherwise)

    async def _say(self, text: str, rate: float = 1.0) -> None:
        self.note("callee", text)
        await self.line.say(text, rate)
        self._check()

    # --- listening -------------------------------------------------------------------------------
    def _new_words(self) -> str:
        return " ".join(w.word for w in self.line.log.heard[self._word_cursor:])

    def _take_turn(self) -> str:
        text = self._new_words()
        self._word_cursor = len(self.line.log.heard)
        if text:
            self.last_agent_turn = text
            self.note("agent", text)
        return text

    def _new_digits(self) -> list[str]:
        digits = [d for _, d, _ in self.line.log.digits[self._digit_cursor:]]
        self._digit_cursor = len(self.line.log.digits)
        return digits

    async def _wait_for_agent(self, step: s.WaitForAgent) -> str:
        started = self.line.now_ms()
        deadline = started + step.timeout_ms
        while self.line.now_ms() < deadline:
            self._check()
            if step.phrase and re.search(step.phrase, self._new_words(), re.IGNORECASE):
                break
            silent = self.line.agent_silent_for_ms()
            # Only speech that ends after this step began counts: the tail of a turn the callee just
            # talked over is not the agent answering.
            # The line logs heard words in the order the callee finished hearing them, so their end
            # times only grow: "any new word ends after started" is a test of the last one (this runs
            # every tick of every waiting call; the slice it replaces grew with the agent's turn).
            heard = self.line.log.heard
            spoke = (len(heard) > self._word_cursor and heard[-1].end_ms > started) or (
                self.line.agent_last_audio_ms or -1) > started
            if not step.phrase and spoke and silent is not None and silent >= step.silence_ms:
                break
            await self.line.next_tick()
        else:
            self.note("event", "timeout waiting for the agent")
        return self._take_turn()

    async def _interrupt(self, step: s.InterruptAfter) -> None:
        started = self.line.now_ms()
        while self.line.agent_audio_since_ms is None or self.line.agent_audio_since_ms < started - 20:
            self._check()
            if self.line.now_ms() - started > step.timeout_ms:
                self.note("event", "timeout waiting for the agent to speak")
                return
            await self.line.next_tick()
        await self.line.clock.sleep_ms(step.ms)
        self._take_turn()
        await self._say(step.text)

    # --- IVR -------------------------------------------------------------------------------------
    def _route(self, routes: dict[str, list[s.Step]], digits: list[str], words: str) -> str | None:
        for digit in digits:
            if digit in routes:
                return digit
        spoken = " ".join(SPOKEN_DIGITS.get(w.strip(".,!?").lower(), w) for w in words.split())
        for key in routes:
            pattern = rf"\b{re.escape(key)}\b" if len(key) == 1 else key
            if spoken and re.search(pattern, spoken, re.IGNORECASE):
                return key
        return None

    async def _menu(self, step: s.Menu) -> None:
        self._new_digits()
        for attempt in range(step.repeats + 1):
            if attempt:
                await self._say("Sorry, I didn't get that.")
            await self._say(step.prompt)
            deadline = self.line.now_ms() + step.timeout_ms
            digits: list[str] = []
            while self.line.now_ms() < deadline:
                self._check()
                digits += self._new_digits()
                choice = self._route(step.routes, digits, self._new_words())
                if choice is not None:
                    self._take_turn()
                    self.note("keys", f"menu choice {choice}")
                    await self._steps(step.routes[choice])
                    return
                await self.line.next_tick()
        await self._steps(step.default if step.default is not None
                          else [s.Say("We did not receive a valid response. Goodbye."), s.Hangup()])

    async def _collect(self, step: s.CollectDigits) -> None:
        for attempt in range(step.retries + 1):
            self._new_digits()  # keys pressed over the prompt count, as on a real IVR
            await self._say(step.prompt if attempt == 0 else "That entry was not recognised. " + step.prompt)
            entry = ""
            deadline = self.line.now_ms() + step.timeout_ms
            while self.line.now_ms() < deadline:
                self._check()
                entry += "".join(self._new_digits())
                if step.until and step.until in entry:
                    entry = entry.split(step.until)[0]
                    break
                await self.line.next_tick()
            self.note("keys", entry)
            if entry and (step.expect is None or entry == step.expect):
                self.collected.append(entry)
                return
        await self._steps([s.Say("Goodbye."), s.Hangup()])

    # --- hold and voicemail ----------------------------------------------------------------------
    async def _hold(self, step: s.Hold) -> None:
        self.note("event", f"hold {step.seconds:g}s")
        music = hold_music(8000)
        end = self.line.now_ms() + step.seconds * 1000
        every = step.announcement_every * 1000 if step.announcement_every else None
        next_announcement = self.line.now_ms() + every if every else float("inf")
        self.line.set_background(music)
        try:
            while (now := self.line.now_ms()) < end:
                self._check()
                if now >= next_announcement:
                    # Recorded announcements interrupt the music, as on most queues.
                    self.line.set_background(None)
                    await self._say(step.announcement)
                    self.line.set_background(music)
                    next_announcement = self.line.now_ms() + (every or 0)
                await self.line.clock.sleep_ms(min(end, next_announcement) - now)
        finally:
            self.line.set_background(None)
        self._take_turn()

    async def _voicemail(self, step: s.Voicemail) -> None:
        await self._say(step.greeting)
        await self.line.sound("beep", beep())
        self.greeting_done.set()
        self._take_turn()
        self.note("event", "recording")
        start = self._word_cursor
        try:
            await self._wait_for_agent(s.WaitForAgent(step.silence_ms, None, step.max_ms))
        finally:
            # Whatever was said before the caller hung up is kept, as a voicemail box does.
            self.voicemail_message = " ".join(w.word for w in self.line.log.heard[start:])
            self.note("event", "voicemail saved")
        self.line.hangup()
        raise _HungUp
