"""Twilio webhooks: signatures checked against PUBLIC_BASE_URL, idempotent callbacks, inbound calls."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from callserver.app import create_app
from shared import events, stream_token
from shared.bus import InProcessBus
from shared.config import Settings
from shared.db import Database
from shared.models import Call, CallEvent, User
from shared.twilio_api import Telephony
from sim.server import serve

TOKEN = "auth-token-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeSession:
    """Stands in for CORE's CallSession: records what the registry and media endpoint hand it."""

    def __init__(self, info: Any, log: Any) -> None:
        self.info, self.log = info, log
        self.statuses: list[tuple[str, str]] = []
        self.commands: list[events.CallCommand] = []
        self.streams: list[Any] = []
        self.frames = 0
        self.ended_reason = ""
        self._over = asyncio.Event()

    async def run(self) -> None:
        await self._over.wait()

    async def attach(self, stream: Any) -> None:
        self.streams.append(stream)
        async for event in stream.events():
            if type(event).__name__ == "Media":
                self.frames += 1

    def handle_command(self, cmd: events.CallCommand) -> None:
        self.commands.append(cmd)

    def on_call_status(self, status: str, answered_by: str = "") -> None:
        self.statuses.append((status, answered_by))
        if status in {"completed", "busy", "failed", "no-answer", "canceled"}:
            self.end(status)

    def end(self, reason: str) -> None:
        self.ended_reason = self.ended_reason or reason
        self._over.set()


@dataclass
class Server:
    url: str
    settings: Settings
    bus: InProcessBus
    db: Database
    app: Any
    sessions: dict[int, FakeSession] = field(default_factory=dict)
    http: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)

    async def post(self, path: str, params: dict[str, str], *, sign: bool = True,
                   signed_url: str | None = None) -> httpx.Response:
        url = self.settings.public_base_url + path
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign:
            validator = RequestValidator(TOKEN)
            headers["X-Twilio-Signature"] = validator.compute_signature(signed_url or url, params)
        return await self.http.post(self.url + path, content=urlencode(params), headers=headers)

    async def new_call(self, status: str = "dialing", **kw: Any) -> int:
        async with self.db.session() as s:
            call = Call(to_number="+12125550100", status=status, system_prompt="p", opening_line="Hi.", **kw)
            s.add(call)
            await s.commit()
            assert call.id is not None
            return call.id

    async def call(self, call_id: int) -> Call:
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
            assert call is not None
            return call


@pytest.fixture
async def server(settings_factory, db: Database) -> AsyncIterator[Server]:  # type: ignore[no-untyped-def]
    port = free_port()
    # The public URL differs from the bound one on purpose: signatures must use the public one.
    settings = settings_factory(twilio_auth_token=TOKEN, twilio_account_sid="AC" + "0" * 32,
                                twilio_from_number="+12125550199", public_base_url="https://calls.example.com",
                                telegram_allowed_users="555", max_concurrent_calls=3)
    bus = InProcessBus()
    sessions: dict[int, FakeSession] = {}

    def factory(info: Any, log: Any) -> FakeSession:
        sessions[info.call_id] = FakeSession(info, log)
        return sessions[info.call_id]

    app = create_app(settings, bus=bus, db=db, providers=object(), telephony=Telephony(settings),
                     session_factory=factory)
    async with serve(app, port=port) as url:
        srv = Server(url, settings, bus, db, app, sessions)
        yield srv
        await srv.http.aclose()


async def test_voice_webhook_answers_stream_twiml_with_token(server: Server) -> None:
    call_id = await server.new_call()
    path = f"/twilio/voice?call_id={call_id}"
    params = {"CallSid": "CA1", "CallStatus": "in-progress", "Direction": "outbound-api"}
    resp = await server.post(path, params)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/xml")
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://calls.example.com/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["call_id"] == str(call_id)
    assert stream_token.verify(server.settings.token_secret, params["token"] or "", call_id)
    call = await server.call(call_id)
    assert call.status == "in-progress" and call.twilio_sid == "CA1"


@pytest.mark.parametrize("how", ["unsigned", "forged", "wrong-url", "tampered"])
async def test_forged_or_unsigned_webhooks_are_refused_and_change_nothing(server: Server, how: str) -> None:
    call_id = await server.new_call(status="ringing")
    params = {"CallSid": "CA2", "CallStatus": "completed", "SequenceNumber": "3"}
    path = f"/twilio/status?call_id={call_id}"
    async with server.bus.subscribe(events.CALL_STATUS, events.CALL_ENDED) as sub:
        for p in (path, f"/twilio/voice?call_id={call_id}", f"/twilio/amd?call_id={call_id}"):
            if how == "unsigned":
                resp = await server.post(p, params, sign=False)
            elif how == "forged":
                resp = await server.http.post(server.url + p, data=params,
                                              headers={"X-Twilio-Signature": "bm9wZQ=="})
            elif how == "wrong-url":  # signed for the URL seen behind the proxy, not the public one
                resp = await server.post(p, params, signed_url=server.url + p)
            else:
                sig = RequestValidator(TOKEN).compute_signature(server.settings.public_base_url + p, params)
                resp = await server.http.post(server.url + p, data={**params, "CallStatus": "busy"},
                                              headers={"X-Twilio-Signature": sig})
            assert resp.status_code == 403
        await asyncio.sleep(0.05)
        assert sub.queue.empty()
    call = await server.call(call_id)
    assert call.status == "ringing" and call.twilio_sid is None
    async with server.db.session() as s:
        assert (await s.exec(select(CallEvent))).all() == []


async def test_status_callbacks_are_idempotent_and_never_go_back(server: Server) -> None:
    call_id = await server.new_call()
    path = f"/twilio/status?call_id={call_id}"
    async with server.bus.subscribe(events.CALL_STATUS, events.CALL_ENDED) as sub:
        for status, seq in [("initiated", 0), ("ringing", 1), ("ringing", 1), ("busy", 2), ("busy", 2),
                            ("ringing", 1), ("completed", 3)]:
            params = {"CallSid": "CA3", "CallStatus": status, "SequenceNumber": str(seq)}
            resp = await server.post(path, params)
            assert resp.status_code == 204
        ended = await sub.get(timeout=2)
        while ended[0] != events.CALL_ENDED:
            ended = await sub.get(timeout=2)
        await asyncio.sleep(0.05)
        rest = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    call = await server.call(call_id)
    assert call.status == "busy" and call.outcome == "busy" and call.ended_at is not None
    assert ended[1].status == "busy"  # type: ignore[attr-defined]
    assert all(topic != events.CALL_ENDED for topic, _ in rest)  # one CallEnded, no session needed
    async with server.db.session() as s:
        kinds = [(e.type, e.payload.get("status")) for e in (await s.exec(select(CallEvent))).all()]
    assert kinds == [("status", "initiated"), ("status", "ringing"), ("status", "busy"), ("ended", "busy")]


async def test_amd_and_final_status_reach_the_live_session(server: Server) -> None:
    call_id = await server.new_call(status="in-progress")
    session = await server.app.state.registry.session_for(call_id, "CA4")
    await server.post(f"/twilio/amd?call_id={call_id}", {"CallSid": "CA4", "AnsweredBy": "machine_end_beep"})
    await server.post(f"/twilio/amd?call_id={call_id}", {"CallSid": "CA4", "AnsweredBy": "machine_end_beep"})
    await server.bus.publish(events.CALL_COMMAND, events.CallCommand(call_id=call_id, kind="say", text="Hi"))
    async with server.bus.subscribe(events.CALL_ENDED) as sub:
        await server.post(f"/twilio/status?call_id={call_id}",
                          {"CallSid": "CA4", "CallStatus": "completed", "CallDuration": "42"})
        await sub.get(timeout=3)
    assert session.statuses == [("in-progress", "machine_end_beep"), ("completed", "")]
    assert [c.text for c in session.commands] == ["Hi"]
    call = await server.call(call_id)
    assert call.answered_by == "machine_end_beep" and call.duration_s == 42 and call.status == "completed"


async def test_inbound_call_creates_call_for_owner_and_notifies(server: Server) -> None:
    params = {"CallSid": "CAin", "From": "+14155550123", "To": "+12125550199", "Direction": "inbound",
              "CallStatus": "ringing"}
    async with server.bus.subscribe(events.CALL_STATUS) as sub:
        resp = await server.post("/twilio/voice", params)
        again = await server.post("/twilio/voice", params)  # Twilio retry: same call, not a second one
        _topic, event = await sub.get(timeout=2)
    assert resp.status_code == 200 and again.status_code == 200
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    assert stream is not None
    call_id = int({p.get("name"): p.get("value") for p in stream.findall("Parameter")}["call_id"] or 0)
    assert isinstance(event, events.CallStatus) and event.call_id == call_id
    assert "+14155550123" in event.detail
    async with server.db.session() as s:
        calls = (await s.exec(select(Call))).all()
        owner = await s.get(User, 555)
    assert len(calls) == 1 and owner is not None
    call = calls[0]
    assert call.direction == "inbound" and call.owner_id == 555 and call.from_number == "+14155550123"
    assert call.opening_line == server.settings.inbound_greeting and "Alex" in call.system_prompt
