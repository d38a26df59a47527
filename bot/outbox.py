"""Per-chat outbox: everything the bot posts about calls goes through one ordered queue per chat.

Why: Telegram allows about one message per second per chat (edits count), and a 429 or an outage must
delay lines, never drop or reorder them, and never reach back into the call. So the bus subscriber only
enqueues here (never awaits Telegram); one task per chat sends at most one request per `min_interval_s`,
coalescing while it waits: consecutive transcript lines of a call become one message (or are appended to
the call's last transcript message by an edit while nothing else was posted after it), and repeated card
updates collapse into one edit, skipped when the text is unchanged. Failures are retried with the wait
Telegram asks for (RetryAfter) or a capped backoff (network errors, 5xx); only errors no retry can fix
(403 blocked, 400 bad request) drop an item, and they are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loguru import logger
from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.cards import CallCard

TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH - 96  # headroom: never split a line at the hard limit
MAX_BACKOFF_S = 30.0


@dataclass
class _Lines:
    call_id: int
    lines: list[str] = field(default_factory=list)
    seqs: list[int | None] = field(default_factory=list)
    """Transcript seq of each line (None for action lines): which message holds which line, for hints."""


@dataclass
class _Card:
    card: CallCard


@dataclass
class _Send:
    """A one-off request (summary, report, document); `send` returns the posted Message."""

    send: Callable[[Bot], Awaitable[Message]]
    call_id: int | None = None


_Op = _Lines | _Card | _Send


@dataclass
class _Open:
    """The transcript message of a call that may still be appended to."""

    message_id: int
    text: str


class ChatOutbox:
    """The ordered, paced queue of one chat."""

    def __init__(self, bot: Bot, chat_id: int, *, min_interval_s: float,
                 on_posted: Callable[[int, int, int | None], None],
                 on_lines: Callable[[int, int, int, list[int]], None] | None = None) -> None:
        self.bot = bot
        self._on_lines = on_lines
        self.chat_id = chat_id
        self.min_interval_s = min_interval_s
        self._on_posted = on_posted
        self._ops: deque[_Op] = deque()
        self._inflight: _Op | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._open: dict[int, _Open] = {}
        self.last_message_id = 0
        """The newest message in the chat we know of (ours or the user's): appending by edit is only
        done while the call's transcript message is still the newest, so the chat reads in order."""
        self._task: asyncio.Task[None] | None = None
        self.retries = 0

    # -- producers (synchronous, never wait) ---------------------------------------------------------

    def line(self, call_id: int, text: str, seq: int | None = None) -> None:
        last = self._ops[-1] if self._ops else None
        if isinstance(last, _Lines) and last.call_id == call_id:
            last.lines.append(text)
            last.seqs.append(seq)
        else:
            self._ops.append(_Lines(call_id, [text], [seq]))
        self._kick()

    def card(self, card: CallCard) -> None:
        # The op being delivered rendered its text already: a change now needs an op of its own.
        waiting = (op for op in self._ops if op is not self._inflight)
        if not any(isinstance(op, _Card) and op.card is card for op in waiting):
            self._ops.append(_Card(card))
        self._kick()

    def send(self, send: Callable[[Bot], Awaitable[Message]], call_id: int | None = None) -> None:
        self._ops.append(_Send(send, call_id))
        self._kick()

    @property
    def queued_lines(self) -> int:
        """Transcript lines waiting to be sent (for tests and metrics)."""
        return sum(len(op.lines) for op in self._ops if isinstance(op, _Lines))

    def saw_message(self, message_id: int) -> None:
        self.last_message_id = max(self.last_message_id, message_id)

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.chat_id}")

    async def drain(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the sender --------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = 0.0
        while True:
            if not self._ops:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            # Waiting here is what lets lines pile up into one message and card updates collapse.
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            op = self._inflight = self._ops[0]
            try:
                sent = await self._deliver(op)
            finally:
                self._inflight = None
            self._ops.popleft()
            if sent:
                next_at = loop.time() + self.min_interval_s

    async def _deliver(self, op: _Op) -> bool:
        """Run one op until it succeeds or cannot; True when a request reached Telegram."""
        attempt = 0
        while True:
            try:
                return await self._once(op)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                logger.info("telegram flood limit in chat {}: retrying in {}s", self.chat_id, wait)
            except Forbidden as exc:
                logger.warning("chat {} refuses the bot's messages ({}); dropped one item", self.chat_id, exc)
                return False
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return False
                logger.error("telegram refused an item for chat {}: {}", self.chat_id, exc.message)
                return False
            except (NetworkError, TelegramError) as exc:  # outage, timeout, 5xx: keep it and retry
                wait = min(MAX_BACKOFF_S, 0.25 * 2 ** min(attempt, 8))
                logger.warning("telegram unreachable for chat {} ({}); retrying in {:.2f}s",
                               self.chat_id, exc, wait)
            attempt += 1
            self.retries += 1
            await asyncio.sleep(wait)

    async def _once(self, op: _Op) -> bool:
        if isinstance(op, _Send):
            message = await op.send(self.bot)
            self._posted(message.message_id, op.call_id)
            return True
        if isinstance(op, _Card):
            return await self._card(op.card)
        return await self._lines(op)

    async def _card(self, card: CallCard) -> bool:
        text, markup = card.render(), card.markup()
        key = (text, _markup_key(markup))
        if card.message_id is None:
            message = await self.bot.send_message(self.chat_id, text, reply_markup=markup)
            card.message_id = message.message_id
            self._posted(message.message_id, card.call_id)
        elif card.shown == key:
            return False
        else:
            try:
                await self.bot.edit_message_text(text, chat_id=self.chat_id, message_id=card.message_id,
                                                 reply_markup=markup)
            except BadRequest as exc:
                if "not found" not in exc.message.lower():
                    raise
                message = await self.bot.send_message(self.chat_id, text, reply_markup=markup)
                card.message_id = message.message_id
                self._posted(message.message_id, card.call_id)
        card.shown = key
        return True

    async def _lines(self, op: _Lines) -> bool:
        # Take as many whole lines as fit in one message; the rest stays queued for the next request.
        opened = self._open.get(op.call_id)
        appendable = opened is not None and opened.message_id == self.last_message_id
        base = opened.text + "\n" if appendable and opened else ""
        taken: list[str] = []
        size = len(base)
        for line in op.lines:
            piece = line[:TEXT_LIMIT]
            if taken and size + len(piece) + 1 > TEXT_LIMIT:
                break
            if not taken and size + len(piece) > TEXT_LIMIT:
                base, size = "", 0  # the open message is full: start a new one
                appendable = False
            taken.append(piece)
            size += len(piece) + 1
        text = base + "\n".join(taken)
        if appendable and opened is not None:
            await self.bot.edit_message_text(text, chat_id=self.chat_id, message_id=opened.message_id)
            opened.text = text
            message_id = opened.message_id
        else:
            message = await self.bot.send_message(self.chat_id, text)
            self._open[op.call_id] = _Open(message.message_id, text)
            self._posted(message.message_id, op.call_id)
            message_id = message.message_id
        seqs = [s for s in op.seqs[: len(taken)] if s is not None]
        if seqs and self._on_lines is not None:
            self._on_lines(self.chat_id, message_id, op.call_id, seqs)
        del op.lines[: len(taken)]
        del op.seqs[: len(taken)]
        if op.lines:  # not all fitted: keep the op at the head of the queue for the next round
            self._ops.insert(1, _Lines(op.call_id, list(op.lines), list(op.seqs)))
            op.lines.clear()
            op.seqs.clear()
        return True

    def _posted(self, message_id: int, call_id: int | None) -> None:
        self.saw_message(message_id)
        self._on_posted(self.chat_id, message_id, call_id)


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup_key(markup: InlineKeyboardMarkup | None) -> Any:
    if markup is None:
        return None
    return tuple(tuple(b.callback_data for b in row) for row in markup.inline_keyboard)


class Outbox:
    """The outboxes of all chats."""

    def __init__(self, bot: Bot, *, min_interval_s: float = 1.5,
                 on_posted: Callable[[int, int, int | None], None] | None = None,
                 on_lines: Callable[[int, int, int, list[int]], None] | None = None) -> None:
        self.bot = bot
        self.min_interval_s = min_interval_s
        self._on_posted = on_posted or (lambda chat, message, call: None)
        self._on_lines = on_lines
        self._chats: dict[int, ChatOutbox] = {}

    def chat(self, chat_id: int) -> ChatOutbox:
        box = self._chats.get(chat_id)
        if box is None:
            box = self._chats[chat_id] = ChatOutbox(self.bot, chat_id, min_interval_s=self.min_interval_s,
                                                    on_posted=self._on_posted, on_lines=self._on_lines)
        return box

    async def drain(self) -> None:
        for box in list(self._chats.values()):
            await box.drain()

    async def close(self) -> None:
        for box in self._chats.values():
            await box.close()
