"""Calls as the chat sees them: bus events -> live cards, transcript lines, summaries.

One task subscribes to the call topics and only updates in-memory cards and enqueues into the per-chat
outbox, so Telegram being slow or down never holds the bus (and so never the call). Calls it has not
seen yet (placed by the scheduler, inbound calls, or a restart mid-call) are looked up in the database
once to find their chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from loguru import logger
from pydantic import BaseModel
from telegram import Bot, Message

from bot.ask import LineMap, Questions
from bot.cards import (
    CallCard,
    action_line,
    callee_name,
    end_text,
    summary_markup,
    summary_text,
    transcript_line,
)
from bot.hard_lines import owner_clock, picked_up_text
from bot.outbox import Outbox
from shared import events
from shared.bus import EventBus
from shared.config import Settings
from shared.db import Database
from shared.models import Call

FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_RANK = {"created": 0, "dialing": 1, "queued": 1, "initiated": 1, "ringing": 2}
TOPICS = (events.CALL_STATUS, events.CALL_TRANSCRIPT, events.CALL_ACTION, events.CALL_ENDED)


class LiveCalls:
    """Live cards per call and the routing of chat messages back to calls."""

    def __init__(self, settings: Settings, db: Database, bus: EventBus, bot: Bot, *,
                 min_interval_s: float = 1.5, tick_s: float = 10.0) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.questions = Questions()
        """The agent's ask_owner questions posted in chats (bot.ask)."""
        self.lines = LineMap()
        """Which chat message holds which transcript line: a reply to one is a hint on it (bot.hints)."""
        self.outbox = Outbox(bot, min_interval_s=min_interval_s, on_posted=self._posted,
                             on_lines=self.lines.on_lines)
        self.tick_s = tick_s
        self.cards: dict[int, CallCard] = {}
        self._messages: dict[tuple[int, int], int] = {}
        self.ready = asyncio.Event()
        """Set once subscribed to the bus: events published after that are all seen."""
        self._task: asyncio.Task[None] | None = None

    # -- what the handlers ask ---------------------------------------------------------------------

    def live_in_chat(self, chat_id: int) -> list[CallCard]:
        return [c for c in self.cards.values() if c.chat_id == chat_id and not c.ended]

    def card_for_message(self, chat_id: int, message_id: int) -> CallCard | None:
        call_id = self._messages.get((chat_id, message_id))
        return self.cards.get(call_id) if call_id is not None else None

    def user_message(self, chat_id: int, message_id: int) -> None:
        """A message the user sent: later transcript lines start a new message below it."""
        self.outbox.chat(chat_id).saw_message(message_id)

    def bind_message(self, chat_id: int, message_id: int, call_id: int) -> None:
        self._messages[(chat_id, message_id)] = call_id
        self.outbox.chat(chat_id).saw_message(message_id)

    def _posted(self, chat_id: int, message_id: int, call_id: int | None) -> None:
        if call_id is not None:
            self._messages[(chat_id, message_id)] = call_id

    def post(self, chat_id: int, text: str, call_id: int | None = None) -> None:
        """Queue a plain message behind the call's lines already queued (keeps the chat in order)."""
        async def send(bot: Bot) -> Message:
            return await bot.send_message(chat_id, text)

        self.outbox.chat(chat_id).send(send, call_id)

    # -- the subscriber ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bot-live-calls")
        await self.ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.outbox.close()

    async def _run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            async with self.bus.subscribe(*TOPICS) as sub:
                self.ready.set()
                async for topic, event in sub:
                    try:
                        await self.handle(topic, event)
                    except Exception:  # one bad event must not end the live view of every call
                        logger.exception("bot: handling {} failed", topic)
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        """Refresh the elapsed time on answered cards (coalesced and skipped when unchanged)."""
        while True:
            await asyncio.sleep(self.tick_s)
            for card in list(self.cards.values()):
                if card.answered and not card.ended:
                    self.outbox.chat(card.chat_id).card(card)

    async def handle(self, topic: str, event: BaseModel) -> None:
        call_id = getattr(event, "call_id", 0)
        card = await self.card(call_id)
        if card is None:
            return
        box = self.outbox.chat(card.chat_id)
        if isinstance(event, events.CallStatus):
            if self._apply_status(card, event):
                box.card(card)
        elif isinstance(event, events.TranscriptLine):
            if event.text.strip():  # an agent cut off before its first word said nothing
                self.lines.add(call_id, event.seq, event.speaker, event.text)
                box.line(call_id, transcript_line(event.speaker, event.text, event.interrupted), event.seq)
        elif isinstance(event, events.CallAction):
            if event.kind == "cost" and not card.ended:
                card.cost, card.v2v_ms = event.detail.get("total"), event.detail.get("v2v_p50_ms")
                box.card(card)
            if event.kind in ("on_hold", "wait_on_hold") and not card.ended:
                card.status = "on-hold"
                card.hold_since = card.hold_since or await owner_clock(self.db, card.chat_id, event.at)
                box.card(card)
            if event.kind == "off_hold" and not card.ended:
                # Recorded announcements are callee lines too: only off_hold means a person is back.
                card.status, card.hold_since = "in-progress", ""
                box.card(card)
                self.post(card.chat_id, picked_up_text(call_id, card.callee, event.detail.get("held_s", 0)),
                          call_id)
            if event.kind == "bridge" and not card.ended:
                card.bridge = str(event.detail.get("stage", ""))
                box.card(card)
            if event.kind == "ask_owner" and "id" in event.detail and not card.ended:
                self.questions.post(box, call_id, event.detail)
            elif event.kind in ("owner_answer", "owner_timeout"):
                why = (f"✅ Answered: {event.detail.get('answer', '')}" if event.kind == "owner_answer"
                       else "⌛ No answer in time: the agent said someone will call back.")
                self.questions.close(box, str(event.detail.get("id", "")), why)
            line = action_line(event.kind, event.detail)
            if line:
                box.line(call_id, line)
        elif isinstance(event, events.CallEnded) and not card.ended:
            await self._ended(card, event)

    def _apply_status(self, card: CallCard, event: events.CallStatus) -> bool:
        if card.ended or event.status in FINAL:
            return False  # the end is shown on CallEnded, with the stored reason
        if _RANK.get(event.status, 3) < _RANK.get(card.status, 3):
            return False  # callbacks arrive out of order; a call never goes back to ringing
        card.status = event.status
        card.answered_by = event.answered_by or card.answered_by
        card.detail = event.detail
        if event.status == "in-progress" and card.answered_at is None:
            card.answered_at = time.monotonic()
        return True

    async def _ended(self, card: CallCard, event: events.CallEnded) -> None:
        card.ended = True
        card.end_text = end_text(event.status, event.reason)
        box = self.outbox.chat(card.chat_id)
        box.card(card)
        async with self.db.session() as s:
            call = await s.get(Call, card.call_id)
        if call is None:
            return
        text, markup = summary_text(call, card.callee), summary_markup(call)
        connected = call.answered_at is not None or call.status not in ("busy", "no-answer", "failed",
                                                                        "canceled")

        async def send(bot: Bot) -> Message:
            return await bot.send_message(card.chat_id, text, reply_markup=markup if connected else None)

        box.send(send, card.call_id)

    async def card(self, call_id: int) -> CallCard | None:
        card = self.cards.get(call_id)
        if card is not None:
            return card
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
        if call is None:
            logger.warning("bot: event for unknown call {}", call_id)
            return None
        chat_id = call.chat_id or call.owner_id or next(iter(self.settings.telegram_allowed_users), None)
        if chat_id is None:
            return None
        card = CallCard(call_id=call_id, chat_id=chat_id, callee=callee_name(call), task=call.task,
                        direction=call.direction, twilio_sid=call.twilio_sid or "",
                        message_id=call.card_message_id, status=call.status,
                        bridge="armed" if (call.options or {}).get("bridge") else "")
        if call.answered_at is not None:
            card.answered_at = time.monotonic()
        self.cards[call_id] = card
        if card.message_id is not None:
            self.bind_message(chat_id, card.message_id, call_id)
        else:
            self.outbox.chat(chat_id).card(card)  # inbound or scheduled: the first event posts the card
        return card
