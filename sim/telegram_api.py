"""Bot API methods of the Telegram emulator (everything except update delivery).

Followed: core.telegram.org/bots/api — sendMessage (text 1-4096 characters after entity parsing,
parse_mode, entities, reply_parameters, reply_markup), InlineKeyboardButton (callback_data 1-64
bytes), updating messages (editMessageText, editMessageCaption, editMessageReplyMarkup: an omitted
reply_markup removes the inline keyboard; an identical edit is 400 "message is not modified"),
deleteMessage, answerCallbackQuery, sendChatAction, sendDocument / sendAudio / sendVoice (multipart
upload or a known file_id), getFile (File.file_path for https://api.telegram.org/file/bot<token>/<path>),
setMyCommands / getMyCommands / deleteMyCommands (BotCommand, BotCommandScope, language_code) and
sendMessageDraft. Error descriptions are the Bot API's own strings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sim.telegram_chat import ChatState
from sim.telegram_markup import render
from sim.telegram_wire import ApiError, Upload, bad_request, bool_param, int_param

if TYPE_CHECKING:
    from sim.telegram import TelegramEmulator

Params = dict[str, Any]
Handler = Callable[["TelegramEmulator", Params, dict[str, Upload]], Awaitable[Any]]
METHODS: dict[str, Handler] = {}

NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly the "
                "same as a current content and reply markup of the message")
MAX_TEXT, MAX_CAPTION = 4096, 1024
_BUTTON_ACTIONS = {"url", "callback_data", "web_app", "login_url", "switch_inline_query", "pay",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                   "callback_game"}
_CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                 "upload_document", "choose_sticker", "find_location", "record_video_note",
                 "upload_video_note"}
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def method(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            METHODS[name.lower()] = handler
        return handler
    return register


def _chat(emu: TelegramEmulator, params: Params) -> ChatState:
    raw = params.get("chat_id")
    if raw in (None, ""):
        raise bad_request("chat_id is empty")
    try:
        chat = emu.chats.get(int(raw))
    except (TypeError, ValueError):
        chat = None
    if chat is None:
        raise bad_request("chat not found")
    if chat.blocked:
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    return chat


def _text(params: Params, key: str, limit: int) -> tuple[str, list[dict[str, Any]]]:
    entity_key = "entities" if key == "text" else "caption_entities"
    text, entities = render(str(params.get(key) or ""), params.get("parse_mode"), params.get(entity_key))
    if len(text) > limit:
        raise bad_request("message is too long" if key == "text" else "message caption is too long")
    return text, entities


def _inline_markup(params: Params) -> dict[str, Any] | None:
    """The inline keyboard to attach; reply keyboards are accepted but are not part of a Message."""
    markup = params.get("reply_markup")
    if not markup:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict) or not button.get("text"):
            raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
        if not _BUTTON_ACTIONS & button.keys():
            raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline "
                              "keyboard")
        if "callback_data" in button and not 1 <= len(str(button["callback_data"]).encode()) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
        if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
            raise bad_request("BUTTON_URL_INVALID")
    rows = [row for row in rows if row]
    return {"inline_keyboard": rows} if rows else None


def _reply_to(chat: ChatState, params: Params) -> int | None:
    reply = params.get("reply_parameters") or {}
    message_id = reply.get("message_id") if isinstance(reply, dict) else None
    if message_id is None:
        message_id = int_param(params, "reply_to_message_id")
    if message_id is None:
        return None
    if chat.visible(int(message_id)) is None:
        allow = reply.get("allow_sending_without_reply") if isinstance(reply, dict) else None
        if allow or bool_param(params, "allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return int(message_id)


def _posted(emu: TelegramEmulator, message: dict[str, Any]) -> dict[str, Any]:
    emu.changes.notify()
    return message


@method("sendMessage")
async def send_message(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat = _chat(emu, params)
    text, entities = _text(params, "text", MAX_TEXT)
    if not text.strip():
        raise bad_request("message text is empty")
    markup, reply_to = _inline_markup(params), _reply_to(chat, params)
    emu.flood.check(chat.id)
    return _posted(emu, chat.add(emu.bot, {"text": text, "entities": entities, "reply_markup": markup},
                                 reply_to))


def _editable(emu: TelegramEmulator, params: Params) -> tuple[ChatState, dict[str, Any]]:
    if params.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = _chat(emu, params)
    message = chat.visible(int_param(params, "message_id", 0) or 0)
    if message is None:
        raise bad_request("message to edit not found")
    if not message["from"].get("is_bot") or message["from"]["id"] != emu.bot["id"]:
        raise bad_request("message can't be edited")
    return chat, message


def _apply_edit(emu: TelegramEmulator, chat: ChatState, old: dict[str, Any], changes: dict[str, Any]) -> Any:
    if all(old.get(key) == value for key, value in changes.items()):
        raise bad_request(NOT_MODIFIED)
    emu.flood.check(chat.id)
    new = {**old, "edit_date": int(time.time())}
    for key, value in changes.items():
        if value:
            new[key] = value
        else:
            new.pop(key, None)
    chat.messages[old["message_id"]] = new
    return _posted(emu, new)


@method("editMessageText")
async def edit_message_text(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat, message = _editable(emu, params)
    text, entities = _text(params, "text", MAX_TEXT)
    if not text.strip():
        raise bad_request("message text is empty")
    if "text" not in message:
        raise bad_request("there is no text in the message to edit")
    return _apply_edit(emu, chat, message, {"text": text, "entities": entities or None,
                                            "reply_markup": _inline_markup(params)})


@method("editMessageCaption")
async def edit_message_caption(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat, message = _editable(emu, params)
    caption, entities = _text(params, "caption", MAX_CAPTION)
    if "text" in message:
        raise bad_request("there is no caption in the message to edit")
    return _apply_edit(emu, chat, message, {"caption": caption or None, "caption_entities": entities or None,
                                            "reply_markup": _inline_markup(params)})


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat, message = _editable(emu, params)
    return _apply_edit(emu, chat, message, {"reply_markup": _inline_markup(params)})


@method("deleteMessage")
async def delete_message(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat = _chat(emu, params)
    message_id = int_param(params, "message_id", 0) or 0
    if chat.visible(message_id) is None:
        raise bad_request("message to delete not found")
    chat.deleted.add(message_id)
    emu.changes.notify()
    return True


@method("answerCallbackQuery")
async def answer_callback_query(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    state = emu.callbacks.get(str(params.get("callback_query_id", "")))
    if state is None or state.answered or time.monotonic() - state.created > emu.callback_timeout_s:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    if len(str(params.get("text") or "")) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    state.answered = True
    state.answer = {"text": params.get("text"), "show_alert": bool_param(params, "show_alert"),
                    "url": params.get("url"), "cache_time": int_param(params, "cache_time", 0)}
    emu.changes.notify()
    return True


@method("sendChatAction")
async def send_chat_action(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat = _chat(emu, params)
    action = str(params.get("action") or "")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.actions.append(action)
    emu.changes.notify()
    return True


async def _send_media(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload], kind: str) -> Any:
    chat = _chat(emu, params)
    source = uploads.get(kind) or params.get(kind)
    if isinstance(source, str) and source.startswith("attach://"):
        source = uploads.get(source.removeprefix("attach://"))
    if isinstance(source, Upload):
        stored = emu.store_file(kind, source.data, source.filename, source.content_type)
    elif not source:
        raise bad_request(f"there is no {kind} in the request")
    elif str(source) in emu.files:
        stored = emu.files[str(source)]
    else:
        raise bad_request("wrong file identifier/HTTP URL specified")
    caption, entities = _text(params, "caption", MAX_CAPTION)
    markup, reply_to = _inline_markup(params), _reply_to(chat, params)
    emu.flood.check(chat.id)
    media = emu.file_object(stored, kind)
    for extra in ("duration", "performer", "title"):
        if params.get(extra) not in (None, "") and (kind != "voice" or extra == "duration"):
            media[extra] = int(params[extra]) if extra == "duration" else str(params[extra])
    if kind in ("audio", "voice"):
        media.setdefault("duration", 0)
    content = {kind: media, "caption": caption or None, "caption_entities": entities, "reply_markup": markup}
    return _posted(emu, chat.add(emu.bot, content, reply_to))


@method("sendDocument")
async def send_document(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    return await _send_media(emu, params, uploads, "document")


@method("sendAudio")
async def send_audio(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    return await _send_media(emu, params, uploads, "audio")


@method("sendVoice")
async def send_voice(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    return await _send_media(emu, params, uploads, "voice")


@method("getFile")
async def get_file(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    stored = emu.files.get(str(params.get("file_id") or ""))
    if stored is None:
        raise bad_request("invalid file_id")
    if len(stored.data) > 20 * 1024 * 1024:
        raise bad_request("file is too big")
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data), "file_path": stored.file_path}


@method("sendMessageDraft")
async def send_message_draft(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    chat = _chat(emu, params)
    if chat.chat["type"] != "private":
        raise bad_request("message drafts can be sent only to private chats")
    draft_id = int_param(params, "draft_id", 0)
    if not draft_id:
        raise bad_request("draft_id must be non-zero")
    text, entities = _text(params, "text", MAX_TEXT)
    if not text.strip():
        raise bad_request("message text is empty")
    chat.drafts[draft_id] = {"text": text, "entities": entities, "date": int(time.time())}
    emu.changes.notify()
    return True


def _commands_key(params: Params) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


@method("setMyCommands")
async def set_my_commands(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    commands = params.get("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("field \"commands\" must be an Array of at most 100 BotCommand")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description") or "")) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    emu.commands[_commands_key(params)] = [
        {"command": c["command"], "description": c["description"]} for c in commands]
    return True


@method("getMyCommands")
async def get_my_commands(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    return emu.commands.get(_commands_key(params), [])


@method("deleteMyCommands")
async def delete_my_commands(emu: TelegramEmulator, params: Params, uploads: dict[str, Upload]) -> Any:
    emu.commands.pop(_commands_key(params), None)
    return True
