"""Twilio REST calls the product makes, through the official SDK with its aiohttp-based async client.

Docs: twilio.com/docs/voice/api/call-resource (create: Url, StatusCallback + StatusCallbackEvent,
MachineDetection + AsyncAmd + AsyncAmdStatusCallback, TimeLimit, Record + RecordingChannels; update:
Status=completed hangs up, Twiml replaces the running TwiML; error 20404 = the call no longer exists).
`edge`/`region` cannot point at 127.0.0.1, so the base URL of the SDK's Api domain is replaced with
TWILIO_API_BASE_URL (PROTOCOLS.md, "SDK base URL").
"""

from __future__ import annotations

# The SDK imports the account's resource tree (~40 ms) lazily on the first `client.calls(...)`; in the
# call server that first use is a hang-up or redirect in the middle of live calls, stalling their audio.
import twilio.rest.api.v2010.account  # noqa: F401
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from shared.config import Settings

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
GONE_CODES = {20404, 21220}  # not found / call not in progress: the call is over already


class Telephony:
    """Outbound calls, hang-up, TwiML replacement and status lookups; never blocks the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    @property
    def client(self) -> Client:
        # aiohttp wants its session created inside the running loop, so build lazily on first use.
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=10)
            self._client = Client(
                self.settings.twilio_account_sid,
                self.settings.twilio_auth_token.get_secret_value(),
                http_client=self._http,
                environment={},
            )
            self._client.api.base_url = self.settings.twilio_api_base_url
        return self._client

    def webhook_url(self, path: str, call_id: int | None = None) -> str:
        url = f"{self.settings.public_base_url}{path}"
        return f"{url}?call_id={call_id}" if call_id is not None else url

    async def place_call(self, *, to: str, call_id: int, record: bool, time_limit_s: int) -> str:
        """Dial `to`; Twilio fetches our voice webhook when answered. Returns the CallSid."""
        extra: dict[str, object] = {}
        if record:
            extra.update(record=True, recording_channels="dual")
        call = await self.client.calls.create_async(
            to=to,
            from_=self.settings.twilio_from_number,
            url=self.webhook_url("/twilio/voice", call_id),
            status_callback=self.webhook_url("/twilio/status", call_id),
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            machine_detection="DetectMessageEnd",
            async_amd="true",
            async_amd_status_callback=self.webhook_url("/twilio/amd", call_id),
            async_amd_status_callback_method="POST",
            time_limit=time_limit_s,
            **extra,  # type: ignore[arg-type]
        )
        return str(call.sid)

    async def call_with_twiml(self, *, to: str, twiml: str, timeout_s: int, caller_id: str = "") -> str:
        """A second leg running `twiml` once answered (the owner's phone for "hold for me");
        it rings `timeout_s` before Twilio gives up with no-answer. Returns its CallSid."""
        call = await self.client.calls.create_async(
            to=to, from_=caller_id or self.settings.twilio_from_number, twiml=twiml, timeout=timeout_s)
        return str(call.sid)

    async def hangup(self, sid: str) -> None:
        """End the call; a call that is already over is not an error."""
        try:
            await self.client.calls(sid).update_async(status="completed")
        except TwilioRestException as exc:
            if exc.code not in GONE_CODES and exc.status != 404:
                raise

    async def update_twiml(self, sid: str, twiml: str) -> None:
        """Replace the call's running TwiML (digits, transfer); this ends its current media stream."""
        await self.client.calls(sid).update_async(twiml=twiml)

    async def fetch_status(self, sid: str) -> str:
        call = await self.client.calls(sid).fetch_async()
        return str(call.status)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None
