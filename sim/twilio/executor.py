"""Executes a call's TwiML documents verb by verb (twilio.com/docs/voice/twiml).

A document is fetched from the call's Url with a signed request (error 11200 if that fails) or taken
inline from Twiml. <Start><Stream> forks the call's audio in the background and goes on with the next verb
(twilio.com/docs/voice/twiml/stream); a fork that cannot connect logs its error and the call goes on.
<Connect><Stream> runs until the server closes the socket (then the next verb runs) or
the call's TwiML is replaced / the call ends (then the stream gets `stop`). Reaching the end of the last
document hangs the call up, as Twilio does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sim.audio import dtmf_tones, silence
from sim.codec import encode_speech
from sim.twilio import twiml
from sim.twilio.calllog import DialedLeg
from sim.twilio.media import MediaStream, StreamFailed
from sim.twilio.resources import API_VERSION, new_sid

if TYPE_CHECKING:
    from sim.twilio.line import Line
    from sim.twilio.network import Call, PhoneNetwork
    from sim.twilio.webhooks import WebhookSender


def call_params(call: Call) -> dict[str, str]:
    """The parameters Twilio sends with every voice webhook of a call."""
    params = {
        "AccountSid": call.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
        "CallStatus": call.status, "Called": call.to, "Caller": call.from_, "Direction": call.direction,
        "From": call.from_, "To": call.to,
    }
    if call.answered_by:
        params["AnsweredBy"] = call.answered_by
    return params


def play_digits_audio(digits: str) -> bytes:
    """<Play digits>: "w" waits half a second, every other character is a DTMF tone."""
    out = bytearray()
    for ch in digits:
        out += silence(500) if ch == "w" else dtmf_tones(ch)
    return bytes(out)


class Executor:
    def __init__(self, net: PhoneNetwork, call: Call, line: Line, sender: WebhookSender) -> None:
        self.net = net
        self.call = call
        self.line = line
        self.sender = sender
        self.first_fetch_status: str | None = None
        """CallStatus for the first request (inbound calls ask with "ringing")."""

    def fail(self, code: int, message: str) -> None:
        self.call.log.errors.append((self.line.now_ms(), code, message))
        self.call.log.notices.append(f"call ended: error {code}")

    async def fetch(self, url: str, method: str) -> str | None:
        params = call_params(self.call)
        if self.first_fetch_status:
            params["CallStatus"], self.first_fetch_status = self.first_fetch_status, None
        token = self.net.accounts[self.call.account_sid]
        result = await self.sender.send(token, method, url, params)
        if not result.ok:
            self.fail(11200, f"HTTP retrieval failure: {result.error or result.status} from {url}")
            return None
        return result.body

    async def run(self, kind: str, value: str, method: str = "POST") -> None:
        """Run a document and every <Redirect> it leads to."""
        while True:
            text = value if kind == "twiml" else await self.fetch(value, method)
            if text is None:
                return
            try:
                verbs, warnings = twiml.parse(text)
            except twiml.TwimlError as exc:
                self.fail(exc.code, exc.message)
                return
            self.call.log.notices.extend(warnings)
            redirect = await self._verbs(verbs)
            if redirect is None:
                return
            kind, value, method = "url", redirect.url, redirect.method

    async def _verbs(self, verbs: list[twiml.Verb]) -> twiml.Redirect | None:
        for verb in verbs:
            match verb:
                case twiml.Say(text=text):
                    self.line.play_to_callee(encode_speech(text))
                    await self.line.drain()
                case twiml.Play(digits=digits) if digits:
                    self.line.digit_source = "play"
                    try:
                        self.line.play_to_callee(play_digits_audio(digits))
                        await self.line.drain()
                        # The detector confirms a tone a little after it ends: let the last one land.
                        await self.net.clock.sleep_ms(60)
                    finally:
                        self.line.digit_source = "inband"
                case twiml.Play(url=url):
                    self.call.log.notices.append(f"<Play> of {url} skipped: the emulator plays no files")
                case twiml.Pause(length_s=length):
                    await self.net.clock.sleep_ms(length * 1000)
                case twiml.Hangup():
                    return None
                case twiml.Redirect():
                    return verb
                case twiml.Dial():
                    await self._dial(verb)
                    return None
                case twiml.Start(stream=spec):
                    self._fork(spec)
                case twiml.Connect(stream=spec):
                    if not await self._stream(spec):
                        return None
        return None

    async def _stream(self, spec: twiml.Stream) -> bool:
        """Run a bidirectional stream; False if it could not start (the call then ends)."""
        try:
            twiml.check_stream_url(spec.url)
        except twiml.TwimlError as exc:
            self.fail(exc.code, exc.message)
            return False
        stream = MediaStream(spec, self.line, self.call.log, self.call.account_sid, self.call.sid,
                             self.net.stream_faults)
        self.call.stream = stream
        try:
            await stream.run()
        except StreamFailed as exc:
            self.fail(exc.code, str(exc))
            return False
        finally:
            if self.call.stream is stream:
                self.call.stream = None
        return True

    def _fork(self, spec: twiml.Stream) -> None:
        """Start a listen-only stream owned by the call (it outlives this document)."""
        try:
            twiml.check_stream_url(spec.url)
        except twiml.TwimlError as exc:
            self.call.log.errors.append((self.line.now_ms(), exc.code, exc.message))
            return
        stream = MediaStream(spec, self.line, self.call.log, self.call.account_sid, self.call.sid,
                             self.net.stream_faults, unidirectional=True)
        self.call.forks.append((stream, asyncio.create_task(self._run_fork(stream))))

    async def _run_fork(self, stream: MediaStream) -> str | None:
        try:
            return await stream.run()
        except StreamFailed as exc:
            self.call.log.errors.append((self.line.now_ms(), exc.code, str(exc)))
            return None

    async def _dial(self, dial: twiml.Dial) -> None:
        """Transfer: the dialed party answers and talks until someone hangs up."""
        if dial.conference:
            room = self.net.conference(dial.conference)
            await room.join(self.call.sid, self.line, self.call.ended, dial.end_conference_on_exit)
            return
        leg = DialedLeg(dial.number, new_sid("CA"), self.line.now_ms())
        self.call.log.dialed.append(leg)
        try:
            if dial.time_limit_s:
                await self.net.clock.sleep_ms(dial.time_limit_s * 1000)
            else:
                await self.call.ended.wait()
        finally:
            leg.ended_ms = self.line.now_ms()
