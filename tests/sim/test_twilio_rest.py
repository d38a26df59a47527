"""Twilio REST emulator driven by the official twilio SDK (sync and async clients)."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from sim.scenarios import library
from sim.server import serve, serve_in_thread
from sim.twilio import PhoneNetwork, create_app
from sim.twilio.testing import WebhookReceiver, twilio_client

SID = "AC" + "1" * 32
TOKEN = "secret-token"
FROM = "+15005550006"
HUMAN = "+12125550101"
SPEED = 20.0


@dataclass
class Env:
    net: PhoneNetwork
    hooks: WebhookReceiver
    client: object
    base: str


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    net = PhoneNetwork(speed=SPEED, accounts={SID: TOKEN}, scenarios=library.default_registry())
    hooks = WebhookReceiver()
    async with serve(create_app(net)) as base, serve(hooks.app()) as hook_base:
        hooks.base_url = hook_base
        client = twilio_client(base, SID, TOKEN, asynchronous=True)
        yield Env(net, hooks, client, base)
        await client.http_client.close()


def test_sync_client_create_fetch_list_update_and_errors() -> None:
    slow = library.friendly_human(ring_ms=60000)
    net = PhoneNetwork(speed=SPEED, accounts={SID: TOKEN}, scenarios={HUMAN: slow})
    with serve_in_thread(create_app(net)) as base:
        client = twilio_client(base, SID, TOKEN)
        call = client.calls.create(to=HUMAN, from_=FROM, twiml="<Response><Pause length='60'/></Response>")
        assert call.sid.startswith("CA") and len(call.sid) == 34
        assert call.status == "queued" and call.direction == "outbound-api"
        assert call.uri == f"/2010-04-01/Accounts/{SID}/Calls/{call.sid}.json"
        assert call.date_created is not None and "recordings" in call.subresource_uris
        fetched = client.calls(call.sid).fetch()
        assert fetched.to == HUMAN and fetched._from == FROM
        assert [c.sid for c in client.calls.list(to=HUMAN)] == [call.sid]
        assert client.calls.list(to="+19999999999") == []
        for _ in range(3):
            client.calls.create(to=HUMAN, from_=FROM, twiml="<Response><Pause length='60'/></Response>")
        assert len(client.calls.list(page_size=2)) == 4  # the SDK follows next_page_uri
        ended = client.calls(call.sid).update(status="completed")
        assert ended.sid == call.sid
        with pytest.raises(TwilioRestException) as bad_to:
            client.calls.create(to="12345", from_=FROM, url="http://127.0.0.1:9/voice")
        assert bad_to.value.status == 400 and bad_to.value.code == 21211
        with pytest.raises(TwilioRestException) as missing:
            client.calls("CA" + "0" * 32).fetch()
        assert missing.value.status == 404 and missing.value.code == 20404
        bad = twilio_client(base, SID, "wrong-token")
        with pytest.raises(TwilioRestException) as denied:
            bad.calls(call.sid).fetch()
        assert denied.value.status == 401 and denied.value.code == 20003
        for other in client.calls.list():
            if other.status not in ("completed", "canceled"):
                client.calls(other.sid).update(status="canceled")


async def test_signed_webhooks_and_status_callbacks_in_order(env: Env) -> None:
    env.hooks.twiml["/voice"] = "<Response><Say>Hello there, this is a test.</Say><Hangup/></Response>"
    call = await env.client.calls.create_async(
        to=HUMAN, from_=FROM, url=env.hooks.url("/voice"), status_callback=env.hooks.url("/status"),
        status_callback_event=["initiated", "ringing", "answered", "completed"])
    await env.net.wait_for_end(call.sid)
    await env.hooks.wait_for(lambda hits: any(h.params.get("CallStatus") == "completed" for h in hits))
    statuses = [h.params["CallStatus"] for h in env.hooks.on("/status")]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params["SequenceNumber"] for h in env.hooks.on("/status")] == ["0", "1", "2", "3"]
    done = env.hooks.on("/status")[-1].params
    assert done["CallbackSource"] == "call-progress-events" and int(done["CallDuration"]) >= 1
    voice = env.hooks.on("/voice")[0]
    assert voice.params["CallStatus"] == "in-progress" and voice.params["Direction"] == "outbound-api"
    validator = RequestValidator(TOKEN)
    for hit in env.hooks.hits:
        assert validator.validate(hit.url, hit.params, hit.signature)
    tampered = dict(voice.params, To="+19998887777")
    assert not validator.validate(voice.url, tampered, voice.signature)
    assert "Hello there, this is a test." in env.net.calls[call.sid].log.heard_text()


async def test_busy_no_answer_and_voicemail_amd(env: Env) -> None:
    busy = await env.client.calls.create_async(to="+12125550104", from_=FROM, twiml="<Response/>")
    no_answer = await env.client.calls.create_async(to="+12125550105", from_=FROM, twiml="<Response/>",
                                                    timeout=5)
    env.hooks.twiml["/vm"] = "<Response><Pause length='30'/></Response>"
    vm = await env.client.calls.create_async(
        to="+12125550103", from_=FROM, url=env.hooks.url("/vm"), machine_detection="DetectMessageEnd",
        async_amd=True, async_amd_status_callback=env.hooks.url("/amd"))
    human = await env.client.calls.create_async(
        to=HUMAN, from_=FROM, url=env.hooks.url("/vm"), machine_detection="Enable")
    for sid in (busy.sid, no_answer.sid):
        await env.net.wait_for_end(sid)
    assert (await env.client.calls(busy.sid).fetch_async()).status == "busy"
    assert (await env.client.calls(no_answer.sid).fetch_async()).status == "no-answer"
    assert env.net.calls[no_answer.sid].log.statuses[-1][1] >= 5000  # rang for the whole Timeout
    await env.hooks.wait_for(lambda hits: any(h.path == "/amd" for h in hits))
    amd = env.hooks.on("/amd")[0].params
    assert amd["AnsweredBy"] == "machine_end_beep" and amd["CallSid"] == vm.sid
    vm_call = env.net.calls[vm.sid]
    greeting_end = vm_call.log.said[-1].end_ms
    assert int(amd["MachineDetectionDuration"]) >= greeting_end - vm_call.line.start_ms
    # Synchronous AMD: the TwiML request waits for the result and carries it.
    await env.hooks.wait_for(lambda hits: any(h.params.get("CallSid") == human.sid for h in hits))
    first = next(h for h in env.hooks.on("/vm") if h.params["CallSid"] == human.sid)
    assert first.params["AnsweredBy"] == "human"
    for sid in (vm.sid, human.sid):
        await env.client.calls(sid).update_async(status="completed")
        await env.net.wait_for_end(sid)
    assert (await env.client.calls(vm.sid).fetch_async()).answered_by == "machine_end_beep"


async def test_time_limit_and_recording(env: Env) -> None:
    call = await env.client.calls.create_async(
        to=HUMAN, from_=FROM, twiml="<Response><Say>Recording check.</Say><Pause length='120'/></Response>",
        time_limit=4, record=True)
    await env.net.wait_for_end(call.sid, timeout_s=10)
    fetched = await env.client.calls(call.sid).fetch_async()
    assert fetched.status == "completed" and fetched.duration in ("4", "5")
    recordings = await env.client.calls(call.sid).recordings.list_async()
    assert len(recordings) == 1 and recordings[0].channels == 2
    rec = await env.client.recordings(recordings[0].sid).fetch_async()
    assert rec.call_sid == call.sid
    import httpx

    async with httpx.AsyncClient(auth=(SID, TOKEN)) as http:
        wav = await http.get(f"{env.base}/2010-04-01/Accounts/{SID}/Recordings/{rec.sid}.wav")
    with wave.open(io.BytesIO(wav.content)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert 3.9 <= w.getnframes() / 8000 <= 4.1


async def test_update_on_ended_call_and_concurrent_calls(env: Env) -> None:
    twiml = "<Response><Pause length='2'/></Response>"
    calls = [await env.client.calls.create_async(to=HUMAN, from_=FROM, twiml=twiml) for _ in range(10)]
    await asyncio.gather(*(env.net.wait_for_end(c.sid) for c in calls))
    assert {env.net.calls[c.sid].status for c in calls} == {"completed"}
    with pytest.raises(TwilioRestException) as over:
        await env.client.calls(calls[0].sid).update_async(status="completed")
    assert over.value.status == 404


async def test_update_with_twiml_replaces_the_running_document(env: Env) -> None:
    call = await env.client.calls.create_async(to=HUMAN, from_=FROM,
                                               twiml="<Response><Pause length='60'/></Response>")
    for _ in range(500):
        if env.net.calls[call.sid].status == "in-progress":
            break
        await asyncio.sleep(0.01)
    new = "<Response><Say>Replaced now.</Say><Hangup/></Response>"
    await env.client.calls(call.sid).update_async(twiml=new)
    await env.net.wait_for_end(call.sid, timeout_s=5)
    assert env.net.calls[call.sid].log.heard_text().endswith("Replaced now.")
    assert env.net.calls[call.sid].end_reason == "twiml ended"


async def test_warm_up_builds_the_webhook_client_calls_then_use() -> None:
    net = PhoneNetwork(accounts={SID: TOKEN})
    assert not net.http_ready
    net.warm_up()  # EmulatorStack.running does this once it serves, before any call
    assert net.http_ready
    client = net.http()
    assert net.http() is client  # the first call's start-up reuses it instead of building one
    await net.aclose()
    assert not net.http_ready
