"""The Twilio REST API subset dialer uses, as a Starlette app the official SDK can talk to.

Follows twilio.com/docs/voice/api/call-resource (create / fetch / list / update a Call),
twilio.com/docs/voice/api/recording (Recording resource, media at ``.wav``) and
twilio.com/docs/usage/twilios-response (JSON errors; 401 code 20003 on bad credentials, 404 code 20404
for an unknown resource, 400 code 21211 for an invalid To number). Requests are form-encoded with repeated
keys for lists, HTTP Basic auth with the account SID and auth token.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sim.twilio.network import Call, CallParams, PhoneNetwork
from sim.twilio.resources import account_base, call_json, error_body, page_json, recording_json

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
STATUS_EVENTS = {"initiated", "ringing", "answered", "completed"}


def _error(code: int, message: str, status: int) -> JSONResponse:
    return JSONResponse(error_body(code, message, status), status_code=status)


def _not_found(path: str) -> JSONResponse:
    return _error(20404, f"The requested resource {path} was not found", 404)


def _authorised(request: Request, net: PhoneNetwork) -> bool:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return user == request.path_params["account"] and net.accounts.get(user) == password


async def _form(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode(), keep_blank_values=True)


def _one(form: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = form.get(key)
    return values[-1] if values else default


def _flag(form: dict[str, list[str]], key: str) -> bool:
    return (_one(form, key, "false") or "false").lower() == "true"


def create_app(net: PhoneNetwork) -> Starlette:
    def guard(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            failure = await net.faults.before_http(error_body(20500, "Internal Server Error", 500))
            if failure is not None:
                return failure
            if not _authorised(request, net):
                body = error_body(20003, "Authenticate", 401)
                body["detail"] = "Your AccountSid or AuthToken was incorrect."
                return JSONResponse(body, status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return await handler(request)
        return wrapped

    def find_call(request: Request) -> Call | None:
        call = net.calls.get(request.path_params["sid"])
        return call if call is not None and call.account_sid == request.path_params["account"] else None

    async def create_call(request: Request) -> Response:
        form = await _form(request)
        to, from_ = _one(form, "To"), _one(form, "From")
        if not to or not E164.match(to):
            return _error(21211, f"Invalid 'To' Phone Number: {to}", 400)
        if not from_ or not E164.match(from_):
            return _error(21212, f"Invalid 'From' Phone Number: {from_}", 400)
        url, twiml = _one(form, "Url"), _one(form, "Twiml")
        if not url and not twiml:
            return _error(21205, "Url parameter is required: set Url, Twiml or ApplicationSid.", 400)
        if twiml and len(twiml) > 4000:
            return _error(13230, "Twiml exceeds 4000 characters", 400)
        events = tuple(e for v in form.get("StatusCallbackEvent", []) for e in v.split())
        if any(e not in STATUS_EVENTS for e in events):
            return _error(21626, "Invalid 'StatusCallbackEvent'", 400)
        params = CallParams(
            to=to, from_=from_, url=url, method=(_one(form, "Method", "POST") or "POST").upper(), twiml=twiml,
            status_callback=_one(form, "StatusCallback"), status_events=events or ("completed",),
            status_method=(_one(form, "StatusCallbackMethod", "POST") or "POST").upper(),
            timeout_s=int(_one(form, "Timeout", "60") or 60),
            machine_detection=_one(form, "MachineDetection"), async_amd=_flag(form, "AsyncAmd"),
            async_amd_callback=_one(form, "AsyncAmdStatusCallback"),
            async_amd_method=(_one(form, "AsyncAmdStatusCallbackMethod", "POST") or "POST").upper(),
            record=_flag(form, "Record"),
            recording_channels=_one(form, "RecordingChannels", "dual") or "dual",
            time_limit_s=int(_one(form, "TimeLimit", "14400") or 14400),
        )
        call = net.create_call(request.path_params["account"], params)
        return JSONResponse(call_json(call), status_code=201)

    async def list_calls(request: Request) -> Response:
        q = request.query_params
        account = request.path_params["account"]
        calls = [c for c in reversed(net.calls.values()) if c.account_sid == account
                 and (not q.get("To") or c.to == q["To"]) and (not q.get("From") or c.from_ == q["From"])
                 and (not q.get("Status") or c.status == q["Status"])]
        size, page = int(q.get("PageSize", "50")), int(q.get("Page", "0"))
        items = [call_json(c) for c in calls[page * size:(page + 1) * size]]
        extra = "".join(f"&{k}={q[k]}" for k in ("To", "From", "Status") if q.get(k))
        return JSONResponse(page_json("calls", items, f"{account_base(account)}/Calls.json", page, size,
                                      len(calls), extra))

    async def fetch_call(request: Request) -> Response:
        call = find_call(request)
        return JSONResponse(call_json(call)) if call else _not_found(request.url.path)

    async def update_call(request: Request) -> Response:
        call = find_call(request)
        if call is None:
            return _not_found(request.url.path)
        form = await _form(request)
        status, twiml, url = _one(form, "Status"), _one(form, "Twiml"), _one(form, "Url")
        if twiml and url:
            return _error(21208, "Url and Twiml are mutually exclusive", 400)
        if status in ("completed", "canceled"):
            if call.is_over():
                return _not_found(request.url.path)
            if status == "completed" or call.status in ("queued", "ringing"):
                call.hang_up("hung up via the REST API")
        elif status:
            return _error(21218, f"Invalid Status: {status}", 400)
        elif twiml or url:
            if call.status != "in-progress":
                return _error(21220, "Call is not in-progress. Cannot redirect.", 400)
            call.replace_with.put_nowait(("twiml", twiml) if twiml else ("url", url or ""))
        return JSONResponse(call_json(call))

    async def call_recordings(request: Request) -> Response:
        call = find_call(request)
        if call is None:
            return _not_found(request.url.path)
        items = [recording_json(r) for r in net.find_recordings(call.sid)]
        base = f"{account_base(call.account_sid)}/Calls/{call.sid}/Recordings.json"
        return JSONResponse(page_json("recordings", items, base, 0, 50, len(items)))

    async def recording(request: Request) -> Response:
        rec = net.recordings.get(request.path_params["sid"])
        if rec is None or rec.account_sid != request.path_params["account"]:
            return _not_found(request.url.path)
        if request.path_params.get("ext") == "json":
            return JSONResponse(recording_json(rec))
        return Response(rec.wav, media_type="audio/x-wav")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await net.aclose()

    base = "/2010-04-01/Accounts/{account}"
    app = Starlette(routes=[
        Route(base + "/Calls.json", guard(create_call), methods=["POST"]),
        Route(base + "/Calls.json", guard(list_calls), methods=["GET"]),
        Route(base + "/Calls/{sid}.json", guard(fetch_call), methods=["GET"]),
        Route(base + "/Calls/{sid}.json", guard(update_call), methods=["POST"]),
        Route(base + "/Calls/{sid}/Recordings.json", guard(call_recordings), methods=["GET"]),
        Route(base + "/Recordings/{sid}.{ext}", guard(recording), methods=["GET"]),
    ], lifespan=lifespan)
    app.state.network = net
    app.faults = net.faults  # type: ignore[attr-defined]
    return app
