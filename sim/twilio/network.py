"""The phone network: accounts, numbers, scenarios attached to numbers, and the calls in flight.

Calls follow twilio.com/docs/voice/api/call-resource (statuses queued -> ringing -> in-progress ->
completed, or busy / no-answer / failed / canceled). Each call runs as its own task (see ``callflow``),
so any number of calls proceed concurrently in the event loop that serves the REST app.
"""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
import numpy as np

from sim.audio import mulaw_decode
from sim.faults import Faults
from sim.twilio.calllog import CallLog
from sim.twilio.clock import Clock
from sim.twilio.conference import Room
from sim.twilio.resources import new_sid, utcnow

if TYPE_CHECKING:
    from sim.scenarios.engine import Callee, Scenario
    from sim.twilio.line import Line
    from sim.twilio.media import MediaStream


@dataclass
class CallParams:
    to: str
    from_: str
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_events: tuple[str, ...] = ("completed",)
    status_method: str = "POST"
    timeout_s: int = 60
    machine_detection: str | None = None
    async_amd: bool = False
    async_amd_callback: str | None = None
    async_amd_method: str = "POST"
    record: bool = False
    recording_channels: str = "dual"
    time_limit_s: int = 14400


@dataclass
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    date_created: datetime
    duration_s: float
    channels: int
    wav: bytes


@dataclass
class Call:
    sid: str
    account_sid: str
    params: CallParams
    direction: str = "outbound-api"
    status: str = "queued"
    answered_by: str | None = None
    parent_call_sid: str | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None
    end_time: datetime | None = None
    log: CallLog = field(default_factory=CallLog)
    line: Line | None = None
    callee: Callee | None = None
    stream: MediaStream | None = None
    forks: list[tuple[MediaStream, asyncio.Task[str | None]]] = field(default_factory=list)
    """`<Start><Stream>` forks: they run until the call ends, across TwiML replacements."""
    task: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str | None = None
    replace_with: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    """New TwiML sources ("twiml" | "url", value) posted by a REST update."""

    @property
    def to(self) -> str:
        return self.params.to

    @property
    def from_(self) -> str:
        return self.params.from_

    def duration_s(self) -> int | None:
        if self.end_time is None:
            return None
        if self.start_time is None:
            return 0
        return int((self.end_time - self.start_time).total_seconds() * self._speed)

    _speed: float = 1.0

    def is_over(self) -> bool:
        return self.status in ("completed", "busy", "failed", "no-answer", "canceled")

    def hang_up(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ended.set()


class PhoneNetwork:
    def __init__(self, speed: float = 1.0, accounts: dict[str, str] | None = None,
                 scenarios: dict[str, Scenario] | None = None) -> None:
        self.clock = Clock(speed)
        self.accounts: dict[str, str] = dict(accounts or {})
        self.scenarios: dict[str, Scenario] = dict(scenarios or {})
        self.voice_urls: dict[str, tuple[str, str]] = {}
        self.calls: dict[str, Call] = {}
        self.recordings: dict[str, Recording] = {}
        self.faults = Faults()
        self.stream_faults = Faults()
        """Applied to the media-stream WebSockets the network opens (delay, drop after N s)."""
        self._http: httpx.AsyncClient | None = None
        self.conferences: dict[str, Room] = {}

    def conference(self, name: str) -> Room:
        """The named conference room (a new one once the previous of that name has ended)."""
        room = self.conferences.get(name)
        if room is None or room.ended.is_set():
            room = self.conferences[name] = Room(name)
        return room

    # --- set-up ------------------------------------------------------------------------------------
    def add_account(self, account_sid: str, auth_token: str) -> None:
        self.accounts[account_sid] = auth_token

    def attach(self, number: str, scenario: Scenario) -> None:
        """Whoever answers ``number`` behaves as ``scenario``."""
        self.scenarios[number] = scenario

    def set_voice_url(self, number: str, url: str, method: str = "POST") -> None:
        """The voice webhook of one of our numbers, requested for incoming calls."""
        self.voice_urls[number] = (url, method)

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http

    @property
    def http_ready(self) -> bool:
        return self._http is not None

    def warm_up(self) -> None:
        """Build the webhook client now, while no call runs: an httpx client loads the system CA
        certificates (an SSL context, 25-55 ms of CPU), which held the loop inside the first call's
        start-up and delayed every other live call's frames. The call flow (TwiML executor, media
        streams, the websockets client) is imported here too, not by the first REST create call."""
        import sim.twilio.callflow  # noqa: F401 (imported lazily by create_call: a circular import)

        self.http()

    async def aclose(self) -> None:
        for call in list(self.calls.values()):
            call.hang_up("network shut down")
        tasks = [c.task for c in self.calls.values() if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- calls -------------------------------------------------------------------------------------
    def scenario_for(self, number: str) -> Scenario | None:
        return self.scenarios.get(number)

    def create_call(self, account_sid: str, params: CallParams, direction: str = "outbound-api",
                    scenario: Scenario | None = None, parent_call_sid: str | None = None) -> Call:
        from sim.twilio.callflow import run_call

        call = Call(new_sid("CA"), account_sid, params, direction=direction, parent_call_sid=parent_call_sid)
        call._speed = self.clock.speed
        call.log.statuses.append(("queued", self.clock.now_ms()))
        self.calls[call.sid] = call
        call.task = asyncio.create_task(run_call(self, call, scenario or self.scenario_for(params.to)))
        return call

    def place_inbound_call(self, from_: str, to: str, scenario: Scenario,
                           account_sid: str | None = None) -> Call:
        """A caller behaving as ``scenario`` dials our number ``to``: its voice webhook is requested."""
        if to not in self.voice_urls:
            raise KeyError(f"no voice URL configured for {to}")
        url, method = self.voice_urls[to]
        account = account_sid or next(iter(self.accounts))
        params = CallParams(to=to, from_=from_, url=url, method=method)
        return self.create_call(account, params, direction="inbound", scenario=scenario)

    def set_status(self, call: Call, status: str) -> None:
        call.status = status
        call.date_updated = utcnow()
        call.log.statuses.append((status, self.clock.now_ms()))

    async def wait_for_end(self, call_sid: str, timeout_s: float = 30.0) -> Call:
        call = self.calls[call_sid]
        if call.task is not None:
            await asyncio.wait_for(asyncio.shield(call.task), timeout_s)
        return call

    def save_recording(self, call: Call, line: Line) -> Recording:
        inbound = mulaw_decode(bytes(line.inbound_track))
        outbound = mulaw_decode(bytes(line.outbound_track))
        n = max(len(inbound), len(outbound))
        stereo = np.zeros((n, 2), dtype=np.int16)
        stereo[: len(inbound), 0] = inbound
        stereo[: len(outbound), 1] = outbound
        channels = 2 if call.params.recording_channels == "dual" else 1
        frames = stereo if channels == 2 else (stereo.astype(np.int32).sum(axis=1) // 2).astype(np.int16)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(np.ascontiguousarray(frames).tobytes())
        rec = Recording(new_sid("RE"), call.account_sid, call.sid, call.start_time or utcnow(), n / 8000,
                        channels, buffer.getvalue())
        self.recordings[rec.sid] = rec
        return rec

    def find_recordings(self, call_sid: str) -> list[Recording]:
        return [r for r in self.recordings.values() if r.call_sid == call_sid]
