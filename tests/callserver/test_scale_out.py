"""Several call servers: a Twilio callback that lands on one that does not hold the call still reaches it."""

from __future__ import annotations

from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from callserver.app import create_app
from dialer.demo import demo_brain
from sim.scenarios import Scenario
from sim.scenarios.steps import pause, say, wait_for_agent
from sim.server import serve

FAST: dict[str, Any] = {"speed": 8, "llm_ttft_s": 0.03, "llm_tokens_per_s": 400}


async def test_status_callback_on_another_call_server_reaches_the_session(call_stack: Any) -> None:
    scenario = Scenario("long", [say("Hello?"), wait_for_agent(silence_ms=800), pause(120_000)], ring_ms=500)
    async with call_stack(brain=demo_brain(), **FAST) as stack:
        stack.network.attach("+12125550170", scenario)
        call_id = await stack.place_call("+12125550170", "Confirm the appointment on Tuesday at 3 pm.")
        await stack.wait_for(lambda: call_id in stack.registry.calls, timeout_s=15)
        # A second call server on the same database and bus, behind the same public URL.
        other = create_app(stack.settings, bus=stack.bus, db=stack.db)
        async with serve(other) as other_url:
            url = f"{stack.settings.public_base_url}/twilio/status?call_id={call_id}"
            sid = stack.phone_call(call_id).sid
            params = {"CallSid": sid, "AccountSid": stack.settings.twilio_account_sid,
                      "CallStatus": "completed", "CallDuration": "12", "SequenceNumber": "9"}
            token = stack.settings.twilio_auth_token.get_secret_value()
            signature = RequestValidator(token).compute_signature(url, params)
            async with httpx.AsyncClient() as client:
                reply = await client.post(f"{other_url}/twilio/status?call_id={call_id}", data=params,
                                          headers={"X-Twilio-Signature": signature})
            assert reply.status_code == 204
            call = await stack.wait_end(call_id, timeout_s=15)
    assert call.status == "completed"
    assert call_id not in stack.registry.calls  # the holder's session ended on the forwarded callback
