"""Stream tokens (HMAC, expiry, per call) and the TwiML documents built with the SDK."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from shared import stream_token
from shared.twiml import dial_twiml, play_digits_then_stream, stream_twiml

SECRET = b"s3cret"


def test_token_valid_only_for_its_call_secret_and_lifetime() -> None:
    token = stream_token.mint(SECRET, 7, 60, now=1000)
    assert stream_token.verify(SECRET, token, 7, now=1059)
    assert not stream_token.verify(SECRET, token, 7, now=1061)  # expired
    assert not stream_token.verify(SECRET, token, 8, now=1000)  # another call
    assert not stream_token.verify(b"other", token, 7, now=1000)  # another key
    expiry, sig = token.split(".")
    assert not stream_token.verify(SECRET, f"{int(expiry) + 3600}.{sig}", 7, now=1000)  # extended
    for garbage in ("", "abc", "1.2.3", "x.y", f"{expiry}."):
        assert not stream_token.verify(SECRET, garbage, 7, now=1000)


def test_stream_twiml_carries_call_id_and_token(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(public_base_url="https://calls.example.com", stream_token_secret="k" * 16)
    root = ET.fromstring(stream_twiml(settings, 42))
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://calls.example.com/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["call_id"] == "42"
    assert stream_token.verify(settings.token_secret, params["token"] or "", 42)


def test_digits_then_stream_and_dial(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(public_base_url="http://127.0.0.1:9")
    root = ET.fromstring(play_digits_then_stream(settings, 3, "1w2"))
    assert [child.tag for child in root] == ["Play", "Connect"]
    assert root.find("Play").get("digits") == "1w2"  # type: ignore[union-attr]
    dial = ET.fromstring(dial_twiml("+12125550100", "+12125550199", announce="Connecting <you>"))
    assert dial.find("Say").text == "Connecting <you>"  # type: ignore[union-attr]
    number = dial.find("Dial")
    assert number is not None and number.text == "+12125550100" and number.get("callerId") == "+12125550199"
