"""TwiML documents the call server hands to Twilio, built with the SDK's `VoiceResponse` (escaping included).

Docs: twilio.com/docs/voice/twiml/stream (bidirectional `<Connect><Stream>`: wss URL without a query string,
data passed in `<Parameter>`s; unidirectional `<Start><Stream track="both_tracks">`: a listen-only fork
that runs until the call ends while the next verbs execute),
twilio.com/docs/voice/twiml/play (`digits`), twilio.com/docs/voice/twiml/dial.
"""

from __future__ import annotations

from typing import Any

from twilio.twiml.voice_response import Connect, Dial, Start, VoiceResponse

from shared import stream_token
from shared.config import Settings

LISTEN_MODE = "listen"
"""`mode` parameter of a listen-only fork, so the call server never tries to talk into it."""


def _add_stream(response: VoiceResponse, settings: Settings, call_id: int) -> None:
    connect = Connect()
    stream = connect.stream(url=settings.media_ws_url)
    _identify(stream, settings, call_id)
    response.append(connect)


def _identify(stream: Any, settings: Settings, call_id: int) -> None:
    stream.parameter(name="call_id", value=str(call_id))
    stream.parameter(
        name="token", value=stream_token.mint(settings.token_secret, call_id, settings.stream_token_ttl_s)
    )


def stream_twiml(settings: Settings, call_id: int) -> str:
    """Connect the call to our media WebSocket, carrying the call id and a fresh stream token."""
    response = VoiceResponse()
    _add_stream(response, settings, call_id)
    return str(response)


def play_digits_then_stream(settings: Settings, call_id: int, digits: str) -> str:
    """Send DTMF through Twilio (`<Play digits>`), then reconnect the call to a new media stream."""
    response = VoiceResponse()
    response.play(digits=digits)
    _add_stream(response, settings, call_id)
    return str(response)


def dial_twiml(number: str, caller_id: str, announce: str = "") -> str:
    """Bridge the call to `number` (a transfer), optionally saying `announce` to the callee first."""
    response = VoiceResponse()
    if announce:
        response.say(announce)
    response.dial(number, caller_id=caller_id or None)
    return str(response)


def hangup_twiml(message: str = "") -> str:
    """Say `message` (if any) and hang up: used to refuse calls politely."""
    response = VoiceResponse()
    if message:
        response.say(message)
    response.hangup()
    return str(response)


def conference_twiml(room: str, announce: str = "", *, end_on_exit: bool = False) -> str:
    """Join the call to conference `room` ("hold for me": the callee's and the owner's legs meet there)."""
    response = VoiceResponse()
    if announce:
        response.say(announce)
    dial = Dial()
    dial.conference(room, end_conference_on_exit=end_on_exit, beep="false",
                    start_conference_on_enter=True)
    response.append(dial)
    return str(response)


def listen_then_conference_twiml(settings: Settings, call_id: int, room: str, *, end_on_exit: bool) -> str:
    """Fork both directions of the call's audio to our media WebSocket (listen-only: the callee's words
    come as track "inbound", the conference's, i.e. the owner's, as "outbound"), then join `room`."""
    response = VoiceResponse()
    start = Start()
    stream = start.stream(url=settings.media_ws_url, track="both_tracks")
    _identify(stream, settings, call_id)
    stream.parameter(name="mode", value=LISTEN_MODE)
    response.append(start)
    dial = Dial()
    dial.conference(room, end_conference_on_exit=end_on_exit, beep="false", start_conference_on_enter=True)
    response.append(dial)
    return str(response)
