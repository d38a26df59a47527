"""Twilio's HTTP webhooks: the voice webhook (TwiML), status callbacks and async AMD callbacks.

Every request must carry a valid `X-Twilio-Signature` (twilio.com/docs/usage/webhooks/webhooks-security),
checked with the SDK's RequestValidator against PUBLIC_BASE_URL + path + query: behind a tunnel or proxy
the URL we see is not the URL Twilio signed. Forged or unsigned requests get 403, are logged, and change
nothing. Callbacks are idempotent: Twilio retries them, so repeats and stale statuses are no-ops.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from loguru import logger
from sqlmodel import select
from twilio.request_validator import RequestValidator

from callserver import lifecycle
from callserver.registry import Registry, Services
from shared import events
from shared.models import Call, User
from shared.twiml import hangup_twiml, stream_twiml

router = APIRouter()
XML = "application/xml"
FULL_MESSAGE = "Sorry, the assistant cannot take another call right now. Please try again later."


class Forbidden(Exception):
    pass


async def signed_params(request: Request) -> dict[str, str]:
    """The request's parameters once its Twilio signature checks out; raises Forbidden otherwise."""
    services: Services = request.app.state.services
    url = services.settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    params: dict[str, str] = {}
    if request.method == "POST":
        form = await request.form()
        params = {k: str(v) for k, v in form.multi_items()}
    signature = request.headers.get("x-twilio-signature", "")
    validator = RequestValidator(services.settings.twilio_auth_token.get_secret_value())
    if not signature or not validator.validate(url, params, signature):
        logger.warning("refused {} {}: {} Twilio signature", request.method, request.url.path,
                       "bad" if signature else "no")
        raise Forbidden
    return params


def _call_id(request: Request) -> int | None:
    raw = request.query_params.get("call_id", "")
    return int(raw) if raw.isdigit() else None


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


@router.api_route("/twilio/voice", methods=["GET", "POST"])
async def voice(request: Request) -> Response:
    """Answer a call with TwiML that connects it to our media stream."""
    try:
        params = await signed_params(request)
    except Forbidden:
        return Response(status_code=403)
    services = _services(request)
    call_id = _call_id(request)
    if call_id is None and params.get("Direction", "inbound") == "inbound":
        call_id = await _inbound_call(services, params)
    if call_id is None:
        return Response(hangup_twiml(), media_type=XML)
    live = _registry(request).active_count()
    if live >= services.settings.max_concurrent_calls:
        logger.bind(call_id=call_id).warning("refusing call: {} calls live", live)
        return Response(hangup_twiml(FULL_MESSAGE), media_type=XML)
    await lifecycle.apply_status(services, call_id, "in-progress", twilio_sid=params.get("CallSid", ""))
    return Response(stream_twiml(services.settings, call_id), media_type=XML)


INBOUND_PROMPT = """\
You are {agent}, an AI assistant answering a phone call to the number of {owner}. Find out who is calling
and why, answer simply, offer to take a message, and note the caller's name, callback number and message
with note_fact. Never claim to be human; if asked, say you are an AI assistant. Keep it short: you are
speaking, not writing. When the caller is done, thank them, say goodbye and call end_call."""


async def _inbound_call(services: Services, params: dict[str, str]) -> int | None:
    """A call to our number: a Call row with the default persona, the owner notified, then streamed."""
    settings = services.settings
    sid = params.get("CallSid", "")
    async with services.db.session() as s:
        if sid:
            existing = (await s.exec(select(Call).where(Call.twilio_sid == sid))).first()
            if existing is not None:  # Twilio retried the webhook
                return existing.id
        owner_id = settings.telegram_allowed_users[0] if settings.telegram_allowed_users else None
        owner = await s.get(User, owner_id) if owner_id is not None else None
        if owner_id is not None and owner is None:
            owner = User(id=owner_id)
            s.add(owner)
            await s.flush()  # the Call row's foreign key needs the user row first
        name = (owner.full_name if owner else "") or "the owner"
        call = Call(owner_id=owner_id, direction="inbound", to_number=params.get("To", "")[:20],
                    from_number=params.get("From", "")[:20], task="Answer an incoming call.",
                    system_prompt=INBOUND_PROMPT.format(agent=settings.agent_name, owner=name),
                    opening_line=settings.inbound_greeting, status="ringing", twilio_sid=sid or None,
                    chat_id=owner_id)
        s.add(call)
        await s.commit()
        call_id = call.id
    assert call_id is not None
    await services.bus.publish(events.CALL_STATUS, events.CallStatus(
        call_id=call_id, status="ringing", detail=f"incoming call from {params.get('From', 'unknown')}"))
    logger.bind(call_id=call_id).info("inbound call from {}", params.get("From", "?"))
    return call_id


@router.post("/twilio/status")
async def status_callback(request: Request) -> Response:
    """Call progress: initiated, ringing, answered (in-progress), completed, busy, no-answer, failed."""
    try:
        params = await signed_params(request)
    except Forbidden:
        return Response(status_code=403)
    call_id = _call_id(request)
    if call_id is None:
        return Response(status_code=204)
    status = params.get("CallStatus", "")
    duration = params.get("CallDuration", "")
    services, registry = _services(request), _registry(request)
    changed = await lifecycle.apply_status(
        services, call_id, status, twilio_sid=params.get("CallSid", ""),
        duration_s=float(duration) if duration.isdigit() else None)
    if changed is None:
        return Response(status_code=204)
    held = registry.on_call_status(call_id, status)
    if not held:
        await registry.forward_status(call_id, status)
    if status in lifecycle.FINAL_STATUSES and not held and call_id not in registry.finished:
        # No session here: the call never connected, or another call server holds it and ends it.
        registry.finished.add(call_id)
        registry.spawn(registry.finish_unless_held_elsewhere(changed, status))
    return Response(status_code=204)


@router.post("/twilio/amd")
async def amd_callback(request: Request) -> Response:
    """Async answering-machine detection result: human, machine_start, machine_end_beep, fax, unknown."""
    try:
        params = await signed_params(request)
    except Forbidden:
        return Response(status_code=403)
    call_id = _call_id(request)
    answered_by = params.get("AnsweredBy", "")
    if call_id is None or not answered_by:
        return Response(status_code=204)
    services = _services(request)
    changed = await lifecycle.apply_status(services, call_id, "", answered_by=answered_by,
                                           detail="answering machine detection")
    if changed is not None:
        registry = _registry(request)
        if not registry.on_call_status(call_id, changed.status, answered_by):
            await registry.forward_status(call_id, changed.status, answered_by)
    return Response(status_code=204)
