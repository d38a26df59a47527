"""Hold for me, the small parts: the fork-then-conference TwiML, track handling of a Media Streams fork,
and which streams the bridge treats as listen-only."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from typing import Any

from callserver.bridge import Bridge
from callserver.twilio_stream import Media, MediaStream
from shared import stream_token
from shared.twiml import LISTEN_MODE, listen_then_conference_twiml


def start(tracks: list[str] | None, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = {"streamSid": "MZ1", "callSid": "CA1", "customParameters": params}
    if tracks is not None:
        body["tracks"] = tracks
    return {"event": "start", "start": body}


def media(track: str, audio: bytes = b"\x7f" * 160) -> str:
    return json.dumps({"event": "media", "media": {"track": track, "chunk": "1", "timestamp": "20",
                                                   "payload": base64.b64encode(audio).decode()}})


def test_listen_then_conference_twiml(settings_factory: Any) -> None:
    settings = settings_factory(public_base_url="https://dialer.example.com")
    root = ET.fromstring(listen_then_conference_twiml(settings, 42, "dialer-call-42", end_on_exit=True))
    assert [el.tag for el in root] == ["Start", "Dial"]  # the fork must be running before the join
    stream = root.find("Start/Stream")
    assert stream is not None and stream.get("track") == "both_tracks"
    assert stream.get("url") == settings.media_ws_url and "?" not in settings.media_ws_url
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["call_id"] == "42" and params["mode"] == LISTEN_MODE
    assert stream_token.verify(settings.token_secret, params["token"] or "", 42)
    assert not stream_token.verify(settings.token_secret, params["token"] or "", 43)
    room = root.find("Dial/Conference")
    assert room is not None and room.text == "dialer-call-42"
    assert room.get("endConferenceOnExit") == "true" and room.get("beep") == "false"


def test_fork_yields_both_tracks_a_bidirectional_stream_only_inbound() -> None:
    fork = MediaStream(None, start(["inbound", "outbound"], mode=LISTEN_MODE))  # type: ignore[arg-type]
    assert fork._parse(media("inbound")) == Media(b"\x7f" * 160, 20, "inbound")
    assert fork._parse(media("outbound")) == Media(b"\x7f" * 160, 20, "outbound")
    plain = MediaStream(None, start(None))  # type: ignore[arg-type]
    assert plain.tracks == ["inbound"] and plain._parse(media("outbound")) is None
    assert plain._parse(media("inbound")) is not None


def test_bridge_tells_forks_from_the_agents_stream() -> None:
    assert Bridge.is_fork(MediaStream(None, start(["inbound", "outbound"])))  # type: ignore[arg-type]
    assert Bridge.is_fork(MediaStream(None, start(["inbound"], mode=LISTEN_MODE)))  # type: ignore[arg-type]
    assert not Bridge.is_fork(MediaStream(None, start(["inbound"], call_id="1")))  # type: ignore[arg-type]
