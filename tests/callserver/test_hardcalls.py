"""HardCalls' decisions against a stand-in session (no network): which turns skip the LLM, hold in and out,
voicemail arming, AMD after a conversation, limits on the media clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from callserver.audio import silence
from callserver.hardcalls import HardCalls
from callserver.history import History, Message
from callserver.turns import TurnTaker
from shared.config import Settings


@dataclass
class Log:
    actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def action(self, kind: str, **detail: Any) -> None:
        self.actions.append((kind, detail))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.actions]


@dataclass
class Info:
    call_id: int = 1
    twilio_sid: str = "CA1"
    task: str = "Ask about claim 4411."
    owner_number: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings, self.info, self.log = settings, Info(), Log()
        self.history, self.turns = History("sys"), TurnTaker()
        self._ended = asyncio.Event()
        self.spawned: list[Any] = []
        self.replies: list[str] = []

    def _spawn(self, coro: Any) -> None:
        self.spawned.append(coro)
        coro.close()

    def _start_reply(self, *, say: str, then: Any = None) -> None:
        self.replies.append(say)

    async def hang_up(self, reason: str) -> None:
        self._ended.set()


def make(settings_factory: Any, **overrides: Any) -> tuple[HardCalls, Session]:
    session = Session(settings_factory(**overrides))
    return HardCalls(session), session  # type: ignore[arg-type]


def test_hold_in_and_out_without_the_llm(settings_factory: Any) -> None:
    hard, s = make(settings_factory)
    assert hard.on_turn("Please hold while I transfer you.") is True
    assert hard.hold is not None and hard.listening_only and s.log.kinds() == ["on_hold"]
    for _ in range(3):
        assert hard.on_turn("Your call is important to us. Please stay on the line.") is True
    assert hard.on_turn("Hi, this is Dana, how can I help?") is False  # the LLM answers Dana
    assert hard.hold is None and not hard.listening_only
    kind, detail = s.log.actions[-1]
    assert kind == "off_hold" and detail["recordings_skipped"] == 3
    assert "on hold for" in s.history.messages[-1].text


def test_menu_note_once_and_a_question_ends_ivr_mode(settings_factory: Any) -> None:
    hard, s = make(settings_factory)
    assert hard.on_turn("For billing, press 1. For claims, press 2.") is False
    assert hard.on_turn("For a new claim, press 1.") is False
    assert hard.ivr.active and [m.role for m in s.history.messages] == ["note"]
    assert hard.on_turn("Claims department, what's the member ID?") is False
    assert not hard.ivr.active


def test_voicemail_greeting_arms_and_amd_after_a_conversation_is_ignored(settings_factory: Any) -> None:
    hard, _ = make(settings_factory)
    assert hard.on_turn("I can't take your call right now, please leave a message after the tone.") is True
    assert hard.voicemail.state == "armed"
    other, t = make(settings_factory)
    t.history.messages.append(Message("assistant", "Hi, I'm calling about claim 4411."))
    other.on_amd("machine_end_beep")
    assert other.voicemail.state == "idle" and t.log.kinds() == ["amd_ignored"]


def test_hold_limit_and_call_limit_on_the_media_clock(settings_factory: Any) -> None:
    hard, s = make(settings_factory, max_hold_minutes=1, max_call_minutes=2)
    hard.enter_hold("test", by="agent")
    quiet = silence(20)
    for _ in range(int(61_000 / 20)):
        hard.on_media(quiet)
    kinds = s.log.kinds()
    assert kinds.index("limit_warning") < kinds.index("limit_reached")
    assert ("silence", {"seconds": 30, "on_hold": True}) in s.log.actions  # reported, not hung up on
    assert len(s.spawned) == 1  # the hang-up at the hold limit
    hard.leave_hold("person")
    for _ in range(int(60_000 / 20)):
        hard.on_media(quiet)
    calls = [d for k, d in s.log.actions if k.startswith("limit_") and d["limit"] == "call"]
    assert [d.get("seconds_left") for d in calls] == [30, None]  # warned at 60 s, ended at 90 s
    assert "wrap up" in s.history.messages[-1].text
