"""Chats of the Telegram emulator, and the test-side user who reads and writes them.

Object shapes follow core.telegram.org/bots/api#available-types (User, Chat, Message, MessageEntity,
CallbackQuery, InlineKeyboardMarkup, Document, Audio, Voice): a private chat's id equals its user's id,
message ids count up per chat, an edited message carries ``edit_date``, and a "/command" at the start
of a text gets a ``bot_command`` entity (#messageentity).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sim.telegram_wire import utf16_len

if TYPE_CHECKING:
    from sim.telegram import TelegramEmulator

T = TypeVar("T")
MEDIA_KINDS = ("document", "audio", "voice")


@dataclass
class StoredFile:
    """An uploaded file, reachable by getFile and the file download route."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_name: str
    mime_type: str

    @property
    def file_path(self) -> str:
        return f"{self.kind}s/{self.file_unique_id}_{self.file_name}"


@dataclass
class CallbackState:
    """A callback query the emulated user fired, and how the bot answered it."""

    query_id: str
    data: str
    created: float
    answered: bool = False
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatState:
    chat: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    drafts: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    blocked: bool = False
    next_id: int = 1

    @property
    def id(self) -> int:
        return self.chat["id"]

    def add(self, sender: dict[str, Any], content: dict[str, Any], reply_to: int | None = None) -> dict:
        message: dict[str, Any] = {
            "message_id": self.next_id, "from": sender, "chat": self.chat, "date": int(time.time()),
        }
        if reply_to is not None and reply_to in self.messages:
            parent = {k: v for k, v in self.messages[reply_to].items() if k != "reply_to_message"}
            message["reply_to_message"] = parent
        message.update({k: v for k, v in content.items() if v not in (None, [], {})})
        self.next_id += 1
        self.messages[message["message_id"]] = message
        return message

    def visible(self, message_id: int) -> dict[str, Any] | None:
        return None if message_id in self.deleted else self.messages.get(message_id)


class Changes:
    """Wakes test code waiting for the emulator's state to change."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := check()) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            if self._event is None:
                self._event = asyncio.Event()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue
        return result


@dataclass(frozen=True)
class FileView:
    kind: str
    file_id: str
    file_name: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class ChatMessage:
    """One message as the user sees it now (after edits)."""

    id: int
    text: str
    """The text, or the caption of a file."""
    from_bot: bool
    buttons: list[list[str]]
    """Inline keyboard labels, row by row ([] when the message has none)."""
    edited: bool
    reply_to: int | None
    file: FileView | None
    raw: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return [label for row in self.buttons for label in row]

    def button(self, label_or_data: str) -> dict[str, Any]:
        rows = (self.raw.get("reply_markup") or {}).get("inline_keyboard", [])
        for button in (b for row in rows for b in row):
            if label_or_data in (button.get("text"), button.get("callback_data")):
                return button
        raise LookupError(f"no button {label_or_data!r} on message {self.id}; it has {self.labels}")


def view(message: dict[str, Any], files: dict[str, StoredFile]) -> ChatMessage:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    media = next((kind for kind in MEDIA_KINDS if kind in message), None)
    file_view = None
    if media:
        stored = files[message[media]["file_id"]]
        file_view = FileView(media, stored.file_id, stored.file_name, stored.mime_type, stored.data)
    return ChatMessage(
        id=message["message_id"], text=message.get("text", message.get("caption", "")),
        from_bot=message["from"].get("is_bot", False),
        buttons=[[b.get("text", "") for b in row] for row in rows], edited="edit_date" in message,
        reply_to=(message.get("reply_to_message") or {}).get("message_id"), file=file_view, raw=message,
    )


def command_entities(text: str) -> list[dict[str, Any]]:
    match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?", text)
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}] if match else []


@dataclass
class PressedButton:
    """A callback query fired by :meth:`EmulatedUser.press`."""

    state: CallbackState
    _emu: TelegramEmulator

    @property
    def answered(self) -> bool:
        return self.state.answered

    @property
    def answer(self) -> dict[str, Any]:
        return self.state.answer

    async def wait_answered(self, timeout: float = 5.0) -> dict[str, Any]:
        """The answerCallbackQuery parameters (text, show_alert, ...) once the bot answered."""
        return await self._emu.changes.wait_until(
            lambda: self.state.answer if self.state.answered else None, timeout,
            f"an answer to callback query {self.state.query_id}")


class EmulatedUser:
    """A Telegram user in a private chat with the bot, driven by test code."""

    def __init__(self, emu: TelegramEmulator, user: dict[str, Any]) -> None:
        self._emu = emu
        self.user = user
        self.id: int = user["id"]
        self.state = emu.chat_state(self.id)

    async def send(self, text: str, *, reply_to: int | ChatMessage | None = None) -> ChatMessage:
        """Type ``text`` into the chat; the bot gets a ``message`` update."""
        reply_id = reply_to.id if isinstance(reply_to, ChatMessage) else reply_to
        message = self.state.add(self.user, {"text": text, "entities": command_entities(text)}, reply_id)
        self._emu.push_update("message", message)
        return view(message, self._emu.files)

    async def reply_to(self, message: int | ChatMessage, text: str) -> ChatMessage:
        return await self.send(text, reply_to=message)

    async def send_document(self, data: bytes, file_name: str, caption: str | None = None,
                            mime_type: str = "application/octet-stream") -> ChatMessage:
        stored = self._emu.store_file("document", data, file_name, mime_type)
        message = self.state.add(self.user, {"document": self._emu.file_object(stored), "caption": caption})
        self._emu.push_update("message", message)
        return view(message, self._emu.files)

    async def press(self, message: int | ChatMessage | Any, label_or_data: str) -> PressedButton:
        """Press an inline button (by label or callback_data); the bot gets a ``callback_query``.

        ``message`` is a message id, a :class:`ChatMessage` or anything with a ``message_id``.
        """
        message_id = getattr(message, "message_id", message)
        message_id = message_id.id if isinstance(message_id, ChatMessage) else message_id
        current = self.state.visible(message_id)
        if current is None:
            raise LookupError(f"message {message_id} is not in the chat")
        button = view(current, self._emu.files).button(label_or_data)
        if "callback_data" not in button:
            raise LookupError(f"button {label_or_data!r} is not a callback button: {button}")
        state = CallbackState(str(uuid.uuid4().int >> 64), button["callback_data"], time.monotonic())
        self._emu.callbacks[state.query_id] = state
        self._emu.push_update("callback_query", {
            "id": state.query_id, "from": self.user, "message": current,
            "chat_instance": str(abs(hash((self.id, self._emu.bot["id"])))), "data": state.data,
        })
        return PressedButton(state, self._emu)

    def chat(self, *, from_bot: bool | None = None) -> list[ChatMessage]:
        """Visible messages in order, after edits and deletions (both sides unless ``from_bot``)."""
        state = self.state
        views = [view(m, self._emu.files) for i, m in state.messages.items() if i not in state.deleted]
        return [v for v in views if from_bot is None or v.from_bot == from_bot]

    def last(self) -> ChatMessage | None:
        """The newest visible message from the bot."""
        bot_messages = self.chat(from_bot=True)
        return bot_messages[-1] if bot_messages else None

    async def wait_for(self, match: str | re.Pattern[str] | Callable[[ChatMessage], bool],
                       timeout: float = 5.0, *, after: int | ChatMessage | None = None) -> ChatMessage:
        """The first visible bot message (newer than ``after``) whose text matches, waiting for it.

        ``match`` is a regex searched in the text/caption, or a predicate on :class:`ChatMessage`.
        """
        after_id = after.id if isinstance(after, ChatMessage) else (after or 0)
        if callable(match) and not isinstance(match, re.Pattern):
            predicate = match
        else:
            pattern = re.compile(match) if isinstance(match, str) else match
            predicate = lambda m: bool(pattern.search(m.text))  # noqa: E731
        def check() -> ChatMessage | None:
            return next((m for m in self.chat(from_bot=True) if m.id > after_id and predicate(m)), None)
        return await self._emu.changes.wait_until(check, timeout, f"a message matching {match!r}")

    @property
    def drafts(self) -> dict[int, dict[str, Any]]:
        """Live drafts (sendMessageDraft) by draft_id."""
        return self.state.drafts

    @property
    def chat_actions(self) -> list[str]:
        return self.state.actions

    def block(self) -> None:
        """Block the bot: its sends now fail with 403 like Telegram's."""
        self.state.blocked = True

    def unblock(self) -> None:
        self.state.blocked = False
