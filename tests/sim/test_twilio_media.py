"""Media Streams: the emulator as a WebSocket client of an in-test agent server."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sim.audio import FRAME_BYTES, dtmf_tones, silence
from sim.codec import encode_speech
from sim.scenarios import Scenario
from sim.scenarios.steps import pause
from sim.server import serve
from sim.twilio import CallParams, PhoneNetwork
from sim.twilio.calllog import CallLog
from sim.twilio.clock import Clock
from sim.twilio.line import Line
from sim.twilio.media import MediaStream
from sim.twilio.twiml import Stream

SID = "AC" + "2" * 32
TOKEN = "tok"
FROM = "+15005550006"
QUIET = "+12125550199"


@dataclass
class Session:
    ws: WebSocket
    messages: list[tuple[float, dict]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: dict) -> None:
        await self.ws.send_text(json.dumps(message))

    async def media(self, audio: bytes) -> None:
        await self.send({"event": "media", "streamSid": self.stream_sid(),
                         "media": {"payload": base64.b64encode(audio).decode()}})

    def stream_sid(self) -> str:
        return next(m["streamSid"] for _, m in self.messages if m["event"] == "start")

    def events(self, name: str) -> list[dict]:
        return [m for _, m in self.messages if m["event"] == name]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


Agent = Callable[[Session], Awaitable[None]]


async def eventually(predicate: Callable[[], object], timeout_s: float = 5) -> None:
    """Poll a condition that no event signals (the emulator's own state)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class AgentServer:
    """A few lines of Starlette: every stream runs ``agent`` while a reader collects messages."""

    agent: Agent | None = None
    sessions: list[Session] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def endpoint(ws: WebSocket) -> None:
            await ws.accept()
            session = Session(ws)
            self.sessions.append(session)

            async def read() -> None:
                try:
                    while True:
                        session.messages.append((time.monotonic(), json.loads(await ws.receive_text())))
                        session.arrived.set()
                except WebSocketDisconnect:
                    session.arrived.set()

            reader = asyncio.create_task(read())
            try:
                if self.agent is not None:
                    await self.agent(session)
                await reader
            finally:
                reader.cancel()

        return Starlette(routes=[WebSocketRoute("/media", endpoint)])


def connect_twiml(url: str, **params: str) -> str:
    inner = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in params.items())
    return f'<Response><Connect><Stream url="{url}">{inner}</Stream></Connect></Response>'


@pytest.fixture
async def rig() -> AsyncIterator[tuple[PhoneNetwork, AgentServer]]:
    quiet = Scenario("quiet", [pause(600_000)], ring_ms=100)
    net = PhoneNetwork(speed=1.0, accounts={SID: TOKEN}, scenarios={QUIET: quiet})
    server = AgentServer()
    async with serve(server.app()) as base:
        server.url = base.replace("http", "ws") + "/media"
        yield net, server
        await net.aclose()


def place(net: PhoneNetwork, twiml: str, to: str = QUIET, speed: float | None = None) -> str:
    if speed is not None:
        net.clock = Clock(speed)
    return net.create_call(SID, CallParams(to=to, from_=FROM, twiml=twiml)).sid


async def test_stream_handshake_and_realtime_pacing(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    sid = place(net, connect_twiml(server.url, token="abc123", call="42"))
    await asyncio.sleep(0.2)  # ring
    await eventually(lambda: server.sessions and len(server.sessions[0].events("media")) >= 110, 5)
    s = server.sessions[0]
    first, start = s.messages[0][1], s.messages[1][1]
    assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["sequenceNumber"] == "1" and start["start"]["callSid"] == sid
    assert start["start"]["customParameters"] == {"token": "abc123", "call": "42"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["streamSid"].startswith("MZ") and len(start["streamSid"]) == 34
    media = [(t, m) for t, m in s.messages if m["event"] == "media"]
    assert [m["sequenceNumber"] for _, m in media[:3]] == ["2", "3", "4"]
    assert [m["media"]["chunk"] for _, m in media[:3]] == ["1", "2", "3"]
    assert all(len(base64.b64decode(m["media"]["payload"])) == FRAME_BYTES for _, m in media)
    # Real time: over ~2 s, frame timestamps track the wall clock within a frame or two.
    t0, m0 = media[5]
    t1, m1 = media[105]
    stamp_s = (int(m1["media"]["timestamp"]) - int(m0["media"]["timestamp"])) / 1000
    assert stamp_s == pytest.approx(2.0)
    assert abs((t1 - t0) - stamp_s) < 0.05
    net.calls[sid].hang_up("test over")
    await net.wait_for_end(sid)
    assert s.events("stop")[0]["stop"] == {"accountSid": SID, "callSid": sid}


async def test_marks_clear_and_heard_prefix(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    utterance = "one two three four five six seven eight nine ten eleven twelve"
    marks_sent: dict[str, float] = {}

    async def agent(s: Session) -> None:
        await s.wait_for(lambda: len(s.events("media")) > 2)
        await s.send({"event": "mark", "streamSid": s.stream_sid(), "mark": {"name": "empty"}})
        audio = encode_speech("Hello there.")
        await s.media(audio)
        marks_sent["hello"] = time.monotonic()
        await s.send({"event": "mark", "streamSid": s.stream_sid(), "mark": {"name": "hello"}})
        await s.wait_for(lambda: len(s.events("mark")) >= 2)
        long = encode_speech(utterance)
        await s.media(long[: len(long) // 2])
        await s.media(long[len(long) // 2:])
        await s.send({"event": "mark", "streamSid": s.stream_sid(), "mark": {"name": "long"}})
        await asyncio.sleep(1.0)
        marks_sent["clear"] = time.monotonic()
        await s.send({"event": "clear", "streamSid": s.stream_sid()})
        await s.wait_for(lambda: len(s.events("mark")) >= 3)
        await s.send({"event": "bogus", "streamSid": s.stream_sid()})
        await asyncio.sleep(0.1)

    server.agent = agent
    sid = place(net, connect_twiml(server.url))
    await eventually(lambda: server.sessions and len(server.sessions[0].events("mark")) >= 3, 10)
    await asyncio.sleep(0.2)
    s = server.sessions[0]
    echoes = {m["mark"]["name"]: t for t, m in s.messages if m["event"] == "mark"}
    assert list(echoes) == ["empty", "hello", "long"]
    hello_s = len(encode_speech("Hello there.")) / 8000
    assert echoes["hello"] - marks_sent["hello"] >= hello_s - 0.005  # not before its audio played
    assert echoes["hello"] - marks_sent["hello"] < hello_s + 0.1
    assert echoes["long"] - marks_sent["clear"] < 0.05  # clear echoes pending marks at once
    log = net.calls[sid].log
    assert [m.cleared for m in log.marks] == [False, False, True]
    assert all(m.echoed_ms is not None and m.echoed_ms >= m.received_ms for m in log.marks)
    assert [m for _, m in log.received if m["event"] == "mark"] == [
        {"event": "mark", "streamSid": s.stream_sid(), "mark": {"name": name}} for name in echoes]
    assert [m["event"] for _, m in log.received] == ["mark", "mark", "mark", "clear", "bogus"]
    assert [m for _, m in log.sent_events] == [m for _, m in s.messages if m["event"] != "media"]
    # What piles up all call long is left untracked by the collector (see sim.twilio.calllog).
    gc.collect()
    assert not any(map(gc.is_tracked, [*log.mark_rows, *log.received_text, *log.sent_text]))
    heard = log.heard_text()
    assert heard.startswith("Hello there. one two")
    assert "twelve" not in heard  # the cut utterance is heard only up to the clear
    assert 31924 in log.error_codes()
    net.calls[sid].hang_up("done")
    await net.wait_for_end(sid)


async def test_inband_dtmf_and_play_digits(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig

    async def agent(s: Session) -> None:
        await s.wait_for(lambda: len(s.events("media")) > 1)
        await s.media(dtmf_tones("42#") + silence(200))

    server.agent = agent
    sid = place(net, connect_twiml(server.url), speed=5.0)
    await eventually(lambda: len(net.calls[sid].log.digits) >= 3)
    net.calls[sid].replace_with.put_nowait(("twiml", '<Response><Play digits="9w7"/><Hangup/></Response>'))
    await net.wait_for_end(sid)
    digits = [(d, src) for _, d, src in net.calls[sid].log.digits]
    assert digits == [("4", "inband"), ("2", "inband"), ("#", "inband"), ("9", "play"), ("7", "play")]


async def test_twiml_replace_ends_stream_and_starts_new_one(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    sid = place(net, connect_twiml(server.url, leg="first"), speed=5.0)
    await eventually(lambda: server.sessions and len(server.sessions[0].events("media")) >= 5)
    net.calls[sid].replace_with.put_nowait(("twiml", connect_twiml(server.url, leg="second")))
    await eventually(lambda: len(server.sessions) > 1 and len(server.sessions[1].events("media")) >= 5)
    first, second = server.sessions
    assert first.events("stop") and first.messages[-1][1]["event"] == "stop"
    assert second.events("start")[0]["start"]["customParameters"] == {"leg": "second"}
    assert second.stream_sid() != first.stream_sid()
    assert second.events("start")[0]["start"]["callSid"] == sid
    log = net.calls[sid].log
    assert [st["end_reason"] for st in log.streams] == ["twiml replaced", None]
    net.calls[sid].replace_with.put_nowait(("twiml", "<Response><Dial>+14155550123</Dial></Response>"))
    await eventually(lambda: log.dialed)
    assert log.dialed[0].number == "+14155550123" and net.calls[sid].status == "in-progress"
    net.calls[sid].hang_up("done")
    await net.wait_for_end(sid)
    assert log.dialed[0].ended_ms is not None


async def test_stream_url_with_query_string_fails_the_call(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    sid = place(net, connect_twiml(server.url + "?token=x"), speed=10.0)
    await net.wait_for_end(sid)
    assert net.calls[sid].log.error_codes() == [31920]
    assert not server.sessions and net.calls[sid].status == "completed"


async def test_frames_written_from_the_tick_keep_order_with_queued_messages(
        rig: tuple[PhoneNetwork, AgentServer], monkeypatch: pytest.MonkeyPatch) -> None:
    # Media are written straight from the line's tick when nothing is queued; while flow control pauses
    # the socket they queue behind the sender. Either way the server gets every message once, in order.
    from websockets.asyncio.client import ClientConnection

    sent_by_task: list[str] = []
    send = ClientConnection.send

    async def counting_send(self: ClientConnection, message: str, **kwargs: object) -> None:
        sent_by_task.append(message)
        await send(self, message, **kwargs)

    monkeypatch.setattr(ClientConnection, "send", counting_send)

    async def agent(session: Session) -> None:
        await session.wait_for(lambda: len(session.events("media")) >= 20)
        await session.send({"event": "mark", "streamSid": session.stream_sid(), "mark": {"name": "m1"}})

    net, server = rig
    server.agent = agent
    sid = place(net, connect_twiml(server.url))
    await eventually(lambda: server.sessions and len(server.sessions[0].events("media")) >= 40, 5)
    s = server.sessions[0]
    stream = net.calls[sid].stream
    assert stream is not None and stream._ws is not None
    # The asyncio flow-control callbacks the transport calls when its buffer passes the high-water mark
    # and drains again: while paused, frames wait in the stream's queue.
    stream._ws.pause_writing()
    await asyncio.sleep(0.15)
    stream._ws.resume_writing()
    await eventually(lambda: len(s.events("media")) >= 100, 5)
    net.calls[sid].hang_up("test over")
    await net.wait_for_end(sid)
    numbered = [m for _, m in s.messages[1:]]
    assert [int(m["sequenceNumber"]) for m in numbered] == list(range(1, len(numbered) + 1))
    assert numbered[-1]["event"] == "stop" and s.events("mark")[0]["mark"]["name"] == "m1"
    media = s.events("media")
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    # Most frames took the direct write; the paused stretch and the stop went through the sender task.
    assert 3 <= len([m for m in sent_by_task if '"media"' in m]) < len(media) / 2


async def test_handling_cost_per_media_message() -> None:
    log = CallLog()
    line = Line(Clock(), log, lambda: None)
    stream = MediaStream(Stream("ws://127.0.0.1:1/x"), line, log, SID, "CA" + "0" * 32)
    payload = base64.b64encode(encode_speech("hello world")[:FRAME_BYTES]).decode()
    raw = json.dumps({"event": "media", "streamSid": stream.sid, "media": {"payload": payload}})
    n = 20000
    started = time.perf_counter()
    for _ in range(n):
        stream.handle(raw)
    per_message_us = (time.perf_counter() - started) / n * 1e6
    print(f"emulator handling cost: {per_message_us:.1f} us per media message")
    assert per_message_us < 100
    assert line.playout.queued_bytes == n * FRAME_BYTES



async def test_large_media_payloads_play_in_20ms_frames_and_marks_follow_their_audio(
        rig: tuple[PhoneNetwork, AgentServer]) -> None:
    """Twilio accepts `media` of any size (e.g. one message per TTS chunk, half a second each), plays it
    in 20 ms frames and echoes a mark once the audio queued before it has played."""
    net, server = rig
    audio = encode_speech("one two three four five six seven eight nine ten")
    sizes = [4000, 4000, 1234, 3999]
    chunks = [audio[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))] + [audio[sum(sizes):]]
    sent_at: list[float] = []

    async def agent(s: Session) -> None:
        await s.wait_for(lambda: len(s.events("media")) > 2)
        for i, chunk in enumerate(chunks):
            await s.media(chunk)
            await s.send({"event": "mark", "streamSid": s.stream_sid(), "mark": {"name": f"chunk-{i}"}})
        sent_at.append(time.monotonic())
        await s.wait_for(lambda: len(s.events("mark")) >= len(chunks), timeout_s=15)

    server.agent = agent
    sid = place(net, connect_twiml(server.url))
    await eventually(lambda: server.sessions and len(server.sessions[0].events("mark")) >= len(chunks), 15)
    echoes = [(t, m["mark"]["name"]) for t, m in server.sessions[0].messages if m["event"] == "mark"]
    assert [name for _, name in echoes] == [f"chunk-{i}" for i in range(len(chunks))]
    played = 0
    for (at, _), chunk in zip(echoes, chunks, strict=True):
        played += len(chunk)
        # Not before the audio up to the mark has played (whole 20 ms frames), and not long after.
        assert at - sent_at[0] >= played / 8000 - 0.03
        assert at - sent_at[0] < played / 8000 + 0.1
    call = net.calls[sid]
    assert call.log.heard_text() == "one two three four five six seven eight nine ten"
    assert audio in bytes(call.line.outbound_track) and call.line.outbound_track.count(audio) == 1
    call.hang_up("done")
    await net.wait_for_end(sid)


async def test_failed_direct_write_ends_the_stream_not_the_call(
        rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    sid = place(net, connect_twiml(server.url))
    await eventually(lambda: server.sessions and len(server.sessions[0].events("media")) >= 5, 5)
    stream = net.calls[sid].stream
    assert stream is not None and stream._ws is not None

    def broken(data: bytes) -> None:
        raise OSError("connection reset")

    stream._ws.protocol.send_text = broken  # type: ignore[method-assign]
    await asyncio.wait_for(stream.finished.wait(), 5)
    await net.wait_for_end(sid)
    assert net.calls[sid].status == "completed"
    assert not [e for e in net.calls[sid].log.errors if "tick" in e[2]]
