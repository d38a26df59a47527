"""Telegram formatting: ``parse_mode`` HTML / MarkdownV2 / Markdown text -> plain text + entities.

Followed: core.telegram.org/bots/api#formatting-options (supported HTML tags and the four named
character references; MarkdownV2 markers, reserved characters that must be escaped with '\\', and
legacy Markdown) and #messageentity (offsets and lengths in UTF-16 code units). Broken markup fails
the way the Bot API does, with 400 "Bad Request: can't parse entities: ..." naming a UTF-8 byte offset.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sim.telegram_wire import ApiError, utf16_len

_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][\w-]*)((?:\s+[\w-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*/?>")
_ATTR_RE = re.compile(r"([\w-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")
_REFERENCE_RE = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def _parse_error(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {reason}")


def _reserved(char: str) -> ApiError:
    return _parse_error(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


class _Builder:
    """Accumulates plain text and the entities opened and closed over it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += utf16_len(text)

    def close(self, entity: dict[str, Any]) -> None:
        entity["length"] = self.length - entity["offset"]
        if entity["length"] > 0:
            self.entities.append(entity)

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        return "".join(self.parts), sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


def _html_entity(name: str, attrs: dict[str, str], offset: int, at: int) -> dict[str, Any]:
    kind = _HTML_TAGS[name]
    entity: dict[str, Any] = {"type": kind, "offset": offset}
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _parse_error(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    if name == "a":
        if not attrs.get("href"):
            raise _parse_error(f"Can't find URL of the link at byte offset {at}")
        entity["url"] = attrs["href"]
    if name == "code" and attrs.get("class", "").startswith("language-"):
        entity["language"] = attrs["class"].removeprefix("language-")
    if name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    if name == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, dict[str, Any]]] = []
    index = 0
    while index < len(source):
        lt = source.find("<", index)
        chunk = source[index:] if lt < 0 else source[index:lt]
        out.add(_REFERENCE_RE.sub(lambda m: html.unescape(m.group(0)), chunk))
        if lt < 0:
            break
        match = _TAG_RE.match(source, lt)
        if match is None:
            at = _byte_offset(source, lt)
            raise _parse_error(f"Can't find end of the tag starting at byte offset {at}")
        closing, name, raw_attrs = match.group(1), match.group(2).lower(), match.group(3)
        at = _byte_offset(source, lt)
        if name not in _HTML_TAGS:
            word = "end" if closing else "start"
            raise _parse_error(f'Unsupported {word} tag "{name}" at byte offset {at}')
        if closing:
            if not stack or stack[-1][0] != name:
                expected = f'"</{stack[-1][0]}>"' if stack else "none"
                raise _parse_error(
                    f'Unmatched end tag at byte offset {at}, expected {expected}, found "</{name}>"')
            out.close(stack.pop()[1])
        else:
            attrs = {m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
                     for m in _ATTR_RE.finditer(raw_attrs)}
            stack.append((name, _html_entity(name, attrs, out.length, at)))
        index = match.end()
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


_MD2_MARKERS = (("```", "pre"), ("||", "spoiler"), ("__", "underline"), ("`", "code"), ("*", "bold"),
                ("_", "italic"), ("~", "strikethrough"))
_MD1_MARKERS = (("```", "pre"), ("`", "code"), ("*", "bold"), ("_", "italic"))


def _find_closing_code(source: str, start: int, marker: str, strict: bool) -> int:
    index = start
    while True:
        end = source.find(marker, index)
        if end < 0:
            return -1
        if strict and source[end - 1] == "\\" and end - 1 >= start:
            index = end + 1
            continue
        return end


def parse_markdown(source: str, v2: bool) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, dict[str, Any], int]] = []
    markers = _MD2_MARKERS if v2 else _MD1_MARKERS
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\" and index + 1 < len(source) and (v2 or source[index + 1] in "_*`["):
            out.add(source[index + 1])
            index += 2
            continue
        marker = next((m for m in markers if source.startswith(m[0], index)), None)
        if marker and marker[1] in ("pre", "code"):
            end = _find_closing_code(source, index + len(marker[0]), marker[0], v2)
            if end < 0:
                raise _parse_error(f"Can't find end of {marker[1].capitalize()} entity at byte offset "
                                   f"{_byte_offset(source, index)}")
            body = source[index + len(marker[0]):end]
            entity: dict[str, Any] = {"type": marker[1], "offset": out.length}
            if marker[1] == "pre" and "\n" in body and body.split("\n", 1)[0].strip():
                entity["language"], body = body.split("\n", 1)
            out.add(re.sub(r"\\([`\\])", r"\1", body) if v2 else body)
            out.close(entity)
            index = end + len(marker[0])
            continue
        if marker:
            if stack and stack[-1][0] == marker[0]:
                out.close(stack.pop()[1])
            else:
                stack.append((marker[0], {"type": marker[1], "offset": out.length}, index))
            index += len(marker[0])
            continue
        if char == "[":
            close = source.find("](", index)
            end = source.find(")", close) if close >= 0 else -1
            if close < 0 or end < 0:
                if v2:
                    raise _reserved("[")
                out.add(char)
                index += 1
                continue
            label, _ = parse_markdown(source[index + 1:close], v2)
            start = out.length
            out.add(label)
            out.close({"type": "text_link", "offset": start, "url": source[close + 2:end]})
            index = end + 1
            continue
        if v2 and char in _MD2_RESERVED and not (char == ">" and (index == 0 or source[index - 1] == "\n")):
            raise _reserved(char)
        out.add(char)
        index += 1
    if stack:
        kind, at = stack[-1][1]["type"].capitalize(), _byte_offset(source, stack[-1][2])
        raise _parse_error(f"Can't find end of {kind} entity at byte offset {at}")
    return out.result()


def render(text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> tuple[
        str, list[dict[str, Any]]]:
    """The text a user sees and its entities, as the Bot API derives them from a request."""
    mode = (parse_mode or "").lower()
    if entities or not mode:
        return text, list(entities or [])
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown(text, v2=True)
    if mode == "markdown":
        return parse_markdown(text, v2=False)
    raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")
