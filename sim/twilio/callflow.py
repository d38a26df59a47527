"""One call's life: dialing, ringing, the scenario's outcome, answering machine detection, the TwiML
program (replaceable by a REST update), time limit, hang-up, recording and status callbacks.

Follows twilio.com/docs/voice/api/call-resource (StatusCallbackEvent initiated / ringing / answered /
completed, "answered" posted as CallStatus=in-progress, CallDuration on completion; CallbackSource,
SequenceNumber, Timestamp) and twilio.com/docs/voice/answering-machine-detection (AnsweredBy values,
MachineDetectionDuration, DetectMessageEnd waiting for the greeting's beep, AsyncAmd callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from sim.twilio.executor import Executor, call_params
from sim.twilio.line import Line
from sim.twilio.resources import rfc2822, utcnow
from sim.twilio.webhooks import OrderedCallbacks, WebhookSender

if TYPE_CHECKING:
    from sim.scenarios.engine import Callee, Scenario
    from sim.twilio.network import Call, PhoneNetwork

DIAL_MS = 300
"""From the API request to the callee's phone ringing."""


class CallFlow:
    def __init__(self, net: PhoneNetwork, call: Call, scenario: Scenario) -> None:
        self.net = net
        self.call = call
        self.scenario = scenario
        self.sender = WebhookSender(net.http(), call.log.webhooks)
        self.callbacks = OrderedCallbacks(self.sender, net.accounts[call.account_sid])
        self._sequence = 0
        self._answered_ms = 0.0
        self._tasks: list[asyncio.Task] = []

    def status(self, status: str, event: str | None = None) -> None:
        if status != "initiated":
            self.net.set_status(self.call, status)
        else:
            self.call.log.statuses.append((status, self.net.clock.now_ms()))
        p = self.call.params
        if p.status_callback and event in p.status_events:
            params = call_params(self.call) | {
                "CallStatus": status, "CallbackSource": "call-progress-events",
                "SequenceNumber": str(self._sequence), "Timestamp": rfc2822(utcnow()) or "",
            }
            if status in ("completed", "busy", "no-answer", "failed", "canceled"):
                params["CallDuration"] = str(self.call.duration_s() or 0)
                params["Duration"] = str(-(-(self.call.duration_s() or 0) // 60))
            self._sequence += 1
            self.callbacks.post(p.status_method, p.status_callback, params)

    async def _wait_or_end(self, call_ms: float) -> bool:
        """Sleep ``call_ms``; True if the call was hung up / canceled meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.call.ended.wait(), self.net.clock.real_s(call_ms))
        return self.call.ended.is_set()

    async def run(self) -> None:
        try:
            if await self._ring():
                await self._connected()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if not self.call.is_over():
                self.call.end_time = utcnow()
                self.status("completed", "completed")
            await self.callbacks.close()

    async def _ring(self) -> bool:
        """Dial and ring; True once answered."""
        sc = self.scenario
        self.status("initiated", "initiated")
        if await self._wait_or_end(DIAL_MS):
            return self._finish_unanswered("canceled")
        if sc.outcome == "failed":
            return self._finish_unanswered("failed")
        self.status("ringing", "ringing")
        timeout_ms = self.call.params.timeout_s * 1000
        if sc.outcome == "busy":
            return self._finish_unanswered("canceled" if await self._wait_or_end(min(sc.ring_ms, 800))
                                           else "busy")
        if sc.outcome == "no-answer" or sc.ring_ms >= timeout_ms:
            return self._finish_unanswered("canceled" if await self._wait_or_end(timeout_ms)
                                           else "no-answer")
        if await self._wait_or_end(sc.ring_ms):
            return self._finish_unanswered("canceled")
        return True

    def _finish_unanswered(self, status: str) -> bool:
        self.call.end_time = utcnow()
        self.status(status, "completed")
        return False

    async def _connected(self) -> None:
        call, net = self.call, self.net
        call.start_time = utcnow()
        self._answered_ms = net.clock.now_ms()
        inbound = call.direction == "inbound"
        line = Line(net.clock, call.log, lambda: call.hang_up("callee hung up"))
        call.line = line
        callee = self.scenario.callee(line)
        call.callee = callee
        self._tasks += [asyncio.create_task(line.run()), asyncio.create_task(callee.run()),
                        asyncio.create_task(self._time_limit())]
        if not inbound:
            self.status("in-progress", "answered")
        amd: asyncio.Task[str] | None = None
        if call.params.machine_detection and not inbound:
            amd = asyncio.create_task(self._detect_machine(callee))
            self._tasks.append(amd)
            if not call.params.async_amd:
                # Synchronous AMD: Twilio requests the TwiML only once it has a result.
                await asyncio.wait([amd, asyncio.create_task(call.ended.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
        executor = Executor(net, call, line, self.sender)
        if inbound:
            executor.first_fetch_status = "ringing"
            self.status("in-progress", "answered")
        p = call.params
        source = ("twiml", p.twiml or "", "POST") if p.twiml else ("url", p.url or "", p.method)
        try:
            await self._program(executor, source)
        finally:
            if call.stream is not None:
                call.stream.close("call ended")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.stream.finished.wait(), 2)
            for fork, task in call.forks:
                fork.close("call ended")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), 2)
            line.stop()
            call.end_time = utcnow()
            if call.params.record:
                net.save_recording(call, line)
            self.status("completed", "completed")

    async def _program(self, executor: Executor, source: tuple[str, str, str]) -> None:
        call = self.call
        while not call.ended.is_set():
            running = asyncio.create_task(executor.run(*source))
            replaced = asyncio.create_task(call.replace_with.get())
            ended = asyncio.create_task(call.ended.wait())
            done, _ = await asyncio.wait({running, replaced, ended}, return_when=asyncio.FIRST_COMPLETED)
            if running not in done:
                stream = call.stream
                if stream is not None:
                    # Let the stream send `stop` and close before the rest of the document is dropped.
                    stream.close("twiml replaced" if replaced in done else "call ended")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stream.finished.wait(), 2)
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            else:
                running.result()
            for task in (replaced, ended):
                task.cancel()
            if replaced in done and not replaced.cancelled():
                kind, value = replaced.result()
                source = (kind, value, "POST")
                continue
            if running in done:
                call.hang_up("twiml ended")

    async def _time_limit(self) -> None:
        await self.net.clock.sleep_ms(self.call.params.time_limit_s * 1000)
        self.call.log.notices.append(f"time limit of {self.call.params.time_limit_s}s reached")
        self.call.hang_up("time limit")

    async def _detect_machine(self, callee: Callee) -> str:
        sc, p, clock = self.scenario, self.call.params, self.net.clock
        if sc.answered_by == "human" or p.machine_detection != "DetectMessageEnd":
            await clock.sleep_ms(sc.amd_ms)
            result = sc.answered_by
            if result.startswith("machine"):
                result = "machine_start"
        else:
            await callee.greeting_done.wait()
            result = sc.answered_by if sc.answered_by.startswith("machine_end") else "machine_end_beep"
        self.call.answered_by = result
        self.call.log.notices.append(f"AMD: {result}")
        duration = int(clock.now_ms() - self._answered_ms)
        if p.async_amd and p.async_amd_callback:
            self.callbacks.post(p.async_amd_method, p.async_amd_callback, {
                "AccountSid": self.call.account_sid, "CallSid": self.call.sid, "AnsweredBy": result,
                "MachineDetectionDuration": str(duration)})
        return result


async def run_call(net: PhoneNetwork, call: Call, scenario: Scenario | None) -> None:
    if scenario is None:
        from sim.scenarios.library import friendly_human

        scenario = friendly_human()
    await CallFlow(net, call, scenario).run()
