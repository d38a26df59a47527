"""Callee scenarios played through the phone emulator against a trivial in-test agent."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sim.audio import dtmf_tones
from sim.codec import SpeechDecoder, encode_speech
from sim.scenarios import library, load_scenario
from sim.server import serve
from sim.twilio import CallParams, PhoneNetwork
from sim.twilio.testing import WebhookReceiver

SID = "AC" + "3" * 32
TOKEN = "tok"
FROM = "+15005550006"
SPEED = 20.0


class Agent:
    """Hears the callee through a SpeechDecoder and answers with DTMF tones or encoded speech."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.decoder = SpeechDecoder()
        self.words: list[tuple[int, str]] = []
        self.stream_sid = ""
        self.sent: list[tuple[int, str]] = []
        self.clears: list[int] = []
        self.stamp = 0
        self.first_wall: float | None = None
        self.last_wall = 0.0
        self.first_stamp = 0
        self.done = False

    def text(self) -> str:
        return " ".join(w for _, w in self.words)

    async def pump(self) -> None:
        """Read one message; keep the decoder fed with every inbound frame."""
        try:
            message = json.loads(await self.ws.receive_text())
        except WebSocketDisconnect:
            self.done = True
            return
        if message["event"] == "start":
            self.stream_sid = message["streamSid"]
        elif message["event"] == "media":
            self.stamp = int(message["media"]["timestamp"])
            now = time.monotonic()
            if self.first_wall is None:
                self.first_wall, self.first_stamp = now, self.stamp
            self.last_wall = now
            for word in self.decoder.feed(base64.b64decode(message["media"]["payload"])):
                self.words.append((self.stamp, word.word))
        elif message["event"] == "stop":
            self.done = True

    async def until(self, pattern: str) -> None:
        while not re.search(pattern, self.text(), re.IGNORECASE):
            await self.pump()
            if self.done:
                raise AssertionError(f"stream ended before {pattern!r}; heard: {self.text()}")

    async def send_audio(self, audio: bytes, label: str) -> None:
        self.sent.append((self.stamp, label))
        await self.ws.send_text(json.dumps({"event": "media", "streamSid": self.stream_sid,
                                            "media": {"payload": base64.b64encode(audio).decode()}}))

    async def clear(self) -> None:
        self.clears.append(self.stamp)
        await self.ws.send_text(json.dumps({"event": "clear", "streamSid": self.stream_sid}))

    async def drain(self) -> None:
        while not self.done:
            await self.pump()


Script = Callable[[Agent], Awaitable[None]]


@pytest.fixture
async def phone() -> AsyncIterator[tuple[PhoneNetwork, Callable[[Script], str], list[Agent]]]:
    net = PhoneNetwork(speed=SPEED, accounts={SID: TOKEN}, scenarios=library.default_registry())
    agents: list[Agent] = []
    script: list[Script] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        agent = Agent(ws)
        agents.append(agent)
        await script[0](agent)
        await agent.drain()

    app = Starlette(routes=[WebSocketRoute("/media", endpoint)])
    async with serve(app) as base:
        url = base.replace("http", "ws") + "/media"

        def twiml(s: Script) -> str:
            script[:] = [s]
            return f'<Response><Connect><Stream url="{url}"/></Connect></Response>'

        yield net, twiml, agents
        await net.aclose()


async def test_prior_auth_ivr_hold_and_human(phone) -> None:
    net, twiml, agents = phone

    async def agent(a: Agent) -> None:
        await a.until(r"prior authorisation, press 2\.")
        await a.send_audio(dtmf_tones("2"), "key 2")
        await a.until(r"existing request, press 2\.")
        await a.send_audio(dtmf_tones("1"), "key 1")
        await a.until(r"member ID, please\?")
        await a.send_audio(encode_speech("Sure, the member ID is 4471923."), "member id")
        await a.until(r"date of birth\?")
        await a.send_audio(encode_speech("March 3rd, 1961."), "dob")
        await a.until(r"anything else\?")
        await a.send_audio(encode_speech("No, that's all. Thank you!"), "thanks")

    started = time.monotonic()
    call = net.create_call(SID, CallParams(to="+12125550100", from_=FROM, twiml=twiml(agent)))
    await net.wait_for_end(call.sid, timeout_s=20)
    wall = time.monotonic() - started
    a = agents[0]
    heard = a.text()
    assert "Your reference number is PA-48213." in heard
    assert heard.count("Thank you for holding.") >= 2  # periodic announcements during the hold
    assert call.end_reason == "callee hung up" and call.status == "completed"

    callee = call.callee
    notes = [(t, who, text) for t, who, text in callee.transcript]
    choices = [(t, text) for t, who, text in notes if who == "keys"]
    assert [text for _, text in choices] == ["menu choice 2", "menu choice 1"]
    # The IVR waited for the keys: each choice came after the agent's tones, none before.
    key_times = [t for t, d, src in call.log.digits if src == "inband"]
    assert [d for _, d, _ in call.log.digits] == ["2", "1"]
    assert key_times[0] <= choices[0][0] and key_times[1] <= choices[1][0]
    hold_start = next(t for t, who, text in notes if who == "event" and text.startswith("hold"))
    dana = next(t for t, who, text in notes if who == "callee" and text.startswith("Hi, this is Dana"))
    assert dana - hold_start >= 45000
    agent_turns = [text for _, who, text in notes if who == "agent"]
    assert any("4471923" in turn for turn in agent_turns)
    assert any("1961" in turn for turn in agent_turns)
    # Compressed time: the stream's timestamps ran SPEED times faster than the wall clock.
    stream_s = (a.stamp - a.first_stamp) / 1000
    assert stream_s / (a.last_wall - (a.first_wall or 0)) == pytest.approx(SPEED, rel=0.1)
    assert wall < 15


async def test_interrupting_human_barge_in(phone) -> None:
    net, twiml, _ = phone
    long = ("Hi, this is Alex calling on behalf of Jordan about the appointment next week, "
            "I wanted to confirm the time and the address and a few other details with you.")

    async def agent(a: Agent) -> None:
        for trigger in (r"who's this\?", r"who did you say you are\?"):
            await a.until(trigger)
            await a.send_audio(encode_speech(long), "long")
            seen = len(a.words)
            while not a.decoder.in_speech and len(a.words) == seen:
                await a.pump()
            await a.clear()
        await a.until(r"get to the point\?")
        await a.send_audio(encode_speech("Sure. Jordan's appointment is on Tuesday at 3 pm."), "short")

    call = net.create_call(SID, CallParams(to="+12125550102", from_=FROM, twiml=twiml(agent)))
    await net.wait_for_end(call.sid, timeout_s=20)
    log = call.log
    assert len(log.barge_ins) == 2 and len(log.clears) == 2
    for speech_ms, clear_ms in log.barge_ins:
        assert 0 <= clear_ms - speech_ms < 1000
    heard = log.heard_text()
    assert heard.count("Hi, this is") == 2 and "other details with you." not in heard
    said = log.said_text()
    assert "Sorry, sorry, who did you say you are?" in said and "get to the point?" in said


async def test_voicemail_records_the_message_after_the_beep(phone) -> None:
    net, _, _ = phone
    message = "Hi Sam, this is Alex for Jordan, please call back at 555 0100."
    hooks = WebhookReceiver(twiml={"/voice": lambda hit: (
        f"<Response><Say>{message}</Say><Hangup/></Response>"
        if hit.params.get("AnsweredBy") == "machine_end_beep" else "<Response><Hangup/></Response>")})
    async with serve(hooks.app()) as base:
        hooks.base_url = base
        call = net.create_call(SID, CallParams(to="+12125550103", from_=FROM, url=hooks.url("/voice"),
                                               machine_detection="DetectMessageEnd"))
        await net.wait_for_end(call.sid, timeout_s=15)
    assert call.answered_by == "machine_end_beep"
    assert call.callee.voicemail_message == message
    # Synchronous AMD held the TwiML until the beep: the message starts after the greeting.
    assert call.log.heard[0].start_ms > call.log.said[-1].end_ms


async def test_yaml_scenario_with_keypad_entry_and_inbound_call(phone, tmp_path: Path) -> None:
    net, _, _ = phone
    spec = tmp_path / "pharmacy.yaml"
    spec.write_text(
        "name: pharmacy\nring_ms: 500\nsteps:\n"
        "  - menu:\n      prompt: Press 1 for refills.\n      routes:\n"
        "        '1':\n          - collect_digits: {prompt: Enter your ID then pound., expect: '12345'}\n"
        "          - say: Thank you.\n          - hangup\n")
    scenario = load_scenario(spec)
    net.add_account(SID, TOKEN)
    hooks = WebhookReceiver(twiml={"/incoming": (
        '<Response><Pause length="3"/><Play digits="1"/><Pause length="3"/><Play digits="12345#"/>'
        '<Pause length="20"/></Response>')})
    async with serve(hooks.app()) as base:
        hooks.base_url = base
        net.set_voice_url("+15005550006", hooks.url("/incoming"))
        call = net.place_inbound_call("+14155550111", "+15005550006", scenario)
        await net.wait_for_end(call.sid, timeout_s=15)
    first = hooks.on("/incoming")[0].params
    assert first["Direction"] == "inbound" and first["CallStatus"] == "ringing"
    assert call.callee.collected == ["12345"]
    assert call.end_reason == "callee hung up"
    assert [d for _, d, src in call.log.digits if src == "play"] == list("112345#")
