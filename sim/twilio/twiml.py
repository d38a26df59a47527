"""Parse the TwiML voice verbs the emulator executes.

Follows twilio.com/docs/voice/twiml (Say, Play, Pause, Hangup, Redirect, Dial/Number, Connect/Stream
with Parameter) and twilio.com/docs/voice/twiml/stream (`<Start><Stream>`: a unidirectional fork whose
`track` is inbound_track (default), outbound_track or both_tracks; execution goes on with the next verb).
A document Twilio could not parse ends the call with error 12100; a verb it does not know
is error 12200 (schema validation warning) and is skipped, as the real service does for unknown nouns.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class TwimlError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Say:
    text: str


@dataclass
class Play:
    digits: str | None = None
    url: str | None = None
    loop: int = 1


@dataclass
class Pause:
    length_s: float = 1.0


@dataclass
class Hangup:
    pass


@dataclass
class Redirect:
    url: str
    method: str = "POST"


@dataclass
class Dial:
    number: str
    timeout_s: int = 30
    action: str | None = None
    time_limit_s: int | None = None
    conference: str | None = None
    """<Dial><Conference>name</Conference></Dial>: join that room instead of dialing a number."""
    end_conference_on_exit: bool = False


@dataclass
class Stream:
    url: str
    name: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    status_callback: str | None = None
    track: str = "inbound_track"
    """inbound_track | outbound_track | both_tracks (only `<Start><Stream>` may fork the outbound one)."""


@dataclass
class Connect:
    stream: Stream


@dataclass
class Start:
    """`<Start><Stream>`: fork the call's audio to a WebSocket in the background (listen-only)."""

    stream: Stream


Verb = Say | Play | Pause | Hangup | Redirect | Dial | Connect | Start
UNSUPPORTED = {"Gather", "Record", "Enqueue", "Leave", "Reject", "Stop", "Refer", "Pay", "Sms"}


def parse(document: str) -> tuple[list[Verb], list[str]]:
    """The verbs of a TwiML document, and warnings for the ones skipped."""
    try:
        root = ET.fromstring(document.strip())
    except ET.ParseError as exc:
        raise TwimlError(12100, f"Document parse failure: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(12100, "Document parse failure: root element must be <Response>")
    verbs: list[Verb] = []
    warnings: list[str] = []
    for el in root:
        verb = _verb(el)
        if verb is None:
            warnings.append(f"12200: <{el.tag}> is not supported by the emulator")
        else:
            verbs.append(verb)
    return verbs, warnings


def _verb(el: ET.Element) -> Verb | None:
    text = (el.text or "").strip()
    match el.tag:
        case "Say":
            return Say(text)
        case "Play":
            return Play(digits=el.get("digits"), url=text or None, loop=int(el.get("loop", "1")))
        case "Pause":
            return Pause(float(el.get("length", "1")))
        case "Hangup":
            return Hangup()
        case "Redirect":
            return Redirect(text, el.get("method", "POST").upper())
        case "Dial":
            number = el.find("Number")
            target = (number.text or "").strip() if number is not None else text
            limit = el.get("timeLimit")
            room = el.find("Conference")
            return Dial(target, int(el.get("timeout", "30")), el.get("action"),
                        int(limit) if limit else None,
                        (room.text or "").strip() if room is not None else None,
                        room is not None and room.get("endConferenceOnExit", "false").lower() == "true")
        case "Connect" | "Start":
            stream = el.find("Stream")
            if stream is None:
                return None
            params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
            spec = Stream(stream.get("url", ""), stream.get("name"), params, stream.get("statusCallback"),
                          stream.get("track", "inbound_track"))
            if spec.track not in TRACKS:
                return None
            return Connect(spec) if el.tag == "Connect" else Start(spec)
    return None


TRACKS = {"inbound_track": ["inbound"], "outbound_track": ["outbound"],
          "both_tracks": ["inbound", "outbound"]}
"""The `track` attribute -> the `tracks` a stream's `start` message lists and its media messages carry."""


def check_stream_url(url: str) -> None:
    """Refuse what Twilio refuses: a non-wss scheme (ws is allowed for loopback tests) or a query string."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise TwimlError(31923, f"Stream - WebSocket - Malformed URL: {url!r}")
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "wss" and not (parts.scheme == "ws" and loopback):
        raise TwimlError(31922, f"Stream - WebSocket - URL Schema Not Supported: {parts.scheme}")
    if parts.query:
        # Twilio drops the query string on the upgrade; data must go in <Parameter>s.
        raise TwimlError(31920, "Stream - WebSocket - Handshake Error: query strings are not supported")
