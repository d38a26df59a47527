"""CallService: vetting (number, contact, task, capacity) and placing with the real Twilio SDK on sim/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.bus import InProcessBus
from shared.calls import CallFailed, CallRefused, CallService
from shared.config import Settings
from shared.db import Database
from shared.events import CALL_ENDED, CALL_STATUS, CallEnded, CallStatus
from shared.models import Call, Contact, User
from shared.prompt import MAX_TASK_CHARS
from shared.twilio_api import Telephony
from sim.server import serve
from sim.twilio import PhoneNetwork, create_app

ACCOUNT, TOKEN, OWN = "AC" + "1" * 32, "secret-token", "+12125550100"
CALLEE = "+12125550123"


@pytest.fixture
async def phone() -> AsyncIterator[tuple[PhoneNetwork, str]]:
    net = PhoneNetwork(speed=20, accounts={ACCOUNT: TOKEN})
    async with serve(create_app(net)) as url:
        yield net, url


@pytest.fixture
async def service(phone, db: Database, settings_factory) -> AsyncIterator[tuple[CallService, InProcessBus]]:  # type: ignore[no-untyped-def]
    _, url = phone
    settings: Settings = settings_factory(
        twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN, twilio_from_number=OWN, twilio_api_base_url=url,
        max_concurrent_calls=2,
    )
    telephony = Telephony(settings)
    bus = InProcessBus()
    async with db.session() as s:
        s.add(User(id=42, first_name="Ann", full_name="Ann Lee", organisation="Lee Clinic",
                   callback_number="+12125550199"))
        await s.commit()
        s.add(Contact(owner_id=42, name="Aetna", number="+1 212 555 0123"))
        await s.commit()
    yield CallService(settings, db, telephony, bus), bus
    await telephony.close()


async def test_prepare_composes_the_prompt_from_the_profile(service) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    request = await calls.prepare(42, "(212) 555-0123", "  Ask for the status of claim 77. ")
    assert request.to_number == CALLEE
    assert request.task == "Ask for the status of claim 77."
    assert "Ann Lee from Lee Clinic" in request.system_prompt
    assert request.opening_line.endswith("I'm calling to ask for the status of claim 77.")


async def test_contact_names_resolve_case_insensitively(service) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    request = await calls.prepare(42, "aetna", "check a prior authorization")
    assert (request.to_number, request.contact_name) == (CALLEE, "Aetna")
    assert request.callee == "Aetna (+1 212-555-0123)"
    with pytest.raises(CallRefused, match="no contact named 'cigna'"):
        await calls.prepare(42, "cigna", "check a prior authorization")


@pytest.mark.parametrize(("number", "reason"), [
    ("911", "emergency"),
    ("+1 900 555 0100", "premium-rate"),
    (OWN, "own number"),
    ("12345", "not a valid phone number"),
    ("+44 20 7946 0018", "not an allowed country"),
])
async def test_refused_numbers_give_the_reason(service, number: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    with pytest.raises(CallRefused, match=reason):
        await calls.prepare(42, number, "ask about the claim")


async def test_task_length_is_checked(service) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    with pytest.raises(CallRefused, match="too long"):
        await calls.prepare(42, CALLEE, "x" * (MAX_TASK_CHARS + 1))
    with pytest.raises(CallRefused, match="task is missing"):
        await calls.prepare(42, CALLEE, " ")


async def test_tasks_fishing_for_secrets_are_refused(service) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    with pytest.raises(CallRefused, match="refused: it asks the other side for a secret"):
        await calls.prepare(42, CALLEE, "ask them for the one-time code they were texted")


async def test_place_dials_through_twilio_and_announces_dialing(service, phone) -> None:  # type: ignore[no-untyped-def]
    calls, bus = service
    net, _ = phone
    async with bus.subscribe(CALL_STATUS) as sub:
        call = await calls.place(await calls.prepare(42, CALLEE, "ask about the claim"), chat_id=42,
                                 card_message_id=7)
        _, event = await sub.get(timeout=2)
    assert isinstance(event, CallStatus) and (event.call_id, event.status) == (call.id, "dialing")
    assert call.twilio_sid in net.calls
    placed = net.calls[call.twilio_sid].params
    assert placed.to == CALLEE and placed.from_ == OWN
    assert placed.url is not None and placed.url.endswith(f"/twilio/voice?call_id={call.id}")
    assert placed.time_limit_s == 30 * 60
    assert (call.chat_id, call.card_message_id, call.owner_id) == (42, 7, 42)


async def test_concurrency_limit_refuses_the_next_call(service) -> None:  # type: ignore[no-untyped-def]
    calls, _ = service
    for _ in range(2):
        await calls.place(await calls.prepare(42, CALLEE, "ask about the claim"))
    with pytest.raises(CallRefused, match="2 calls are already in progress"):
        await calls.prepare(42, CALLEE, "ask about the claim")


async def test_rest_failure_marks_the_row_failed_with_the_reason(service, phone, db: Database) -> None:  # type: ignore[no-untyped-def]
    calls, bus = service
    net, _ = phone
    request = await calls.prepare(42, CALLEE, "ask about the claim")
    net.faults.http_status, net.faults.fail_count = 500, 10
    async with bus.subscribe(CALL_ENDED) as sub:
        with pytest.raises(CallFailed) as info:
            await calls.place(request)
        _, ended = await sub.get(timeout=2)
    assert isinstance(ended, CallEnded) and ended.status == "failed"
    assert "Twilio refused the call" in info.value.reason and "\x1b" not in info.value.reason
    async with db.session() as s:
        row = await s.get(Call, info.value.call.id)
    assert row is not None and row.status == "failed" and row.end_reason == info.value.reason
    assert row.ended_at is not None
    assert await calls.live_calls() == 0
