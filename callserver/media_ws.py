"""The Twilio Media Streams WebSocket: authenticate the stream, then hand it to the call's session.

The stream proves itself with the `token` `<Parameter>` minted by the voice webhook for this call id
(shared.stream_token); a missing, wrong, expired or other call's token closes the socket with 1008
(policy violation) before any call state is touched. Garbage before `start` closes only that socket.
When a stream ends the call may be over (hang-up) or only have new TwiML (digits, transfer; Twilio
then opens a new stream): inbound calls have no status callback, so the call's status is asked from
Twilio's REST API to tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from loguru import logger
from starlette.websockets import WebSocketState

from callserver import lifecycle
from callserver.registry import CallRefused, LiveCall, Registry, Services
from shared import stream_token

router = APIRouter()
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
# Waits between status checks after a stream ended: quick at first (a hang-up is usually final at once),
# then spaced out, so a status callback lost under load cannot leave the call open until its time limit.
STATUS_CHECKS_S = (0.0, 1.0, 3.0, 10.0, 30.0, 60.0)


@router.websocket("/twilio/media")
async def media(ws: WebSocket) -> None:
    from callserver.twilio_stream import MediaStream, read_start

    services: Services = ws.app.state.services
    registry: Registry = ws.app.state.registry
    await ws.accept()
    try:
        start = await read_start(ws)
    except Exception as exc:  # garbage, timeout or a dropped socket: only this stream is affected
        logger.warning("media stream refused before start: {}", exc)
        await _close(ws, POLICY_VIOLATION)
        return
    stream = MediaStream(ws, start)
    raw_id = stream.custom_parameters.get("call_id", "")
    token = stream.custom_parameters.get("token", "")
    if not raw_id.isdigit() or not stream_token.verify(services.settings.token_secret, token, int(raw_id)):
        logger.warning("media stream {} refused: bad or missing token", stream.stream_sid)
        await _close(ws, POLICY_VIOLATION)
        return
    call_id = int(raw_id)
    try:
        session = await registry.session_for(call_id, stream.call_sid)
    except CallRefused as exc:
        logger.bind(call_id=call_id).warning("media stream refused: {}", exc)
        await _close(ws, TRY_AGAIN_LATER)
        return
    except Exception:  # e.g. the database is down: fail this stream, keep serving the others
        logger.bind(call_id=call_id).exception("could not start the call session")
        await _close(ws, INTERNAL_ERROR)
        return
    live = registry.calls.get(call_id)
    if live is not None:
        live.streams += 1
    try:
        # In a task of its own: every await of a task resumes (and suspends) each coroutine it is nested
        # in, and this handler sits under ~15 of them (uvicorn, FastAPI and Starlette middleware, routing).
        # The stream awaits once per 20 ms frame; its own task resumes only attach and what it awaits
        # (measured: -11 us of call-server CPU per inbound frame, 50 paced streams, uvloop). Cancelling this
        # handler (server shutdown) cancels the task it awaits, and its exceptions come out here as before.
        await asyncio.create_task(session.attach(stream))
    finally:
        await _close(ws, 1000)
    if live is not None and not live.done.is_set():
        registry.spawn(_check_call_over(services, registry, live, stream.call_sid, live.streams))


async def _check_call_over(services: Services, registry: Registry, live: LiveCall, call_sid: str,
                           streams_seen: int) -> None:
    """After a stream ends, end the session if Twilio says the call is over (and no new stream came)."""
    sid = call_sid or live.info.twilio_sid
    for delay in STATUS_CHECKS_S:
        await asyncio.sleep(delay)
        if live.done.is_set() or live.streams != streams_seen:
            return
        try:
            status = await services.telephony.fetch_status(sid)
        except Exception as exc:
            logger.bind(call_id=live.call_id).debug("status check failed: {}", exc)
            continue
        if status in lifecycle.FINAL_STATUSES:
            await lifecycle.apply_status(services, live.call_id, status)
            registry.on_call_status(live.call_id, status)
            return


async def _close(ws: WebSocket, code: int) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code)
