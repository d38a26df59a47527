"""One call's provider usage and cost as it runs, the per-call cost limit, and the do-not-call request.

Units are counted on our side, where they are spent: LLM tokens from each response's usage field
(`MeteredLLM`, also around the post-call summary; a reply cut off by a barge-in gets no usage field but is
billed all the same, so its tokens are estimated at ~4 characters per token), TTS characters when a
phrase is sent for synthesis (`MeteredTTS`), STT audio as it is sent to Deepgram, call time from the
inbound audio (Twilio sends a frame every 20 ms while the call is up, so it is call time even on a
compressed test clock). The shared
providers are wrapped per call, so the session code is unchanged. At the end Twilio's own figure
(`CallDuration`, or the call resource's `duration`) replaces our call clock, since that is what it bills.

The watcher publishes the running cost (CallAction "cost") every COST_REPORT_S, tells the agent to wrap
up at LIMIT_WRAP_UP_SHARE of MAX_CALL_COST, and at the limit says a short goodbye and hangs up after it
was played (with a backstop hang-up if the goodbye never finishes, e.g. talked over).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from loguru import logger

from callserver.llm.base import TextDelta, Usage
from callserver.metrics import percentile
from shared import dnc
from shared.costs import Units, breakdown

if TYPE_CHECKING:
    from callserver.registry import Services
    from callserver.session import CallSession
    from shared.models import Call

BYTES_PER_S = 8000
CHECK_S = 0.2
GOODBYE_BACKSTOP_S = 20.0
GAP_WAIT_S = 8.0
"""Longest wait for the callee to finish their sentence before the goodbye at the cost limit."""
RESERVE_S = 10.0
"""Call time kept in hand for the goodbye (the rest of the callee's sentence and the line itself)."""
LIMIT_REASON = "cost limit reached"
COST_UP_LINE = ("I'm sorry, I have to end this call now. Thank you very much for your help. Goodbye.")
WRAP_UP_NOTE = ("[This call is close to its cost limit: wrap up now. Get or confirm only what matters most, "
                "then thank them and end the call.]")


class MeteredLLM:
    """The shared LLM seen through one call: counts each response's usage into `units`."""

    def __init__(self, llm: Any, units: Units) -> None:
        self._llm = llm
        self.units = units

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    async def stream(self, history: Any, tools: Any) -> AsyncIterator[Any]:
        asked = len(history.messages)  # what the request holds; the history grows once the reply is in
        pieces = chars = 0
        billed = failed = False
        try:
            async with contextlib.aclosing(self._llm.stream(history, tools)) as events:
                async for event in events:
                    if isinstance(event, Usage):
                        billed = True
                        self.units.add_llm(event.provider, event.input_tokens, event.output_tokens)
                        continue
                    if isinstance(event, TextDelta):
                        pieces += 1
                        chars += len(event.text)
                    yield event
        except Exception:
            failed = True  # the provider failed the request: nothing to add for it
            raise
        finally:
            if pieces and not billed and not failed:
                # Closed early (barge-in) or no usage field: the provider still bills the whole prompt
                # and what it generated. The estimate runs after the reply, off the critical path.
                self.units.add_llm(self._llm.name, estimate_prompt_tokens(history, tools, asked),
                                   max(pieces, estimate_tokens(chars)))


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


def estimate_prompt_tokens(history: Any, tools: Any, messages: int) -> int:
    """~4 characters per token over what the model reads: system prompt, the first ``messages``
    messages and the tool definitions."""
    chars = len(history.system)
    for m in history.messages[:messages]:
        chars += len(getattr(m, "note_text", "") if m.role == "note" else m.text or "")
        chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in getattr(m, "tool_calls", None) or ())
    for tool in tools or ():
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return estimate_tokens(chars)


class MeteredTTS:
    """The shared TTS seen through one call: counts the characters sent, retries included."""

    def __init__(self, tts: Any, units: Units) -> None:
        self._tts = tts
        self.units = units

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tts, name)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.units.add_tts(self._tts.name, len(text))
        async with contextlib.aclosing(self._tts.synthesize(text)) as chunks:
            async for chunk in chunks:
                yield chunk


class CallUsage:
    """Per call: counters, running cost, cost limit, do-not-call requests."""

    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.settings = session.settings
        self.units = Units()
        self.warned = False
        self.limit_reached_at: float | None = None
        self.opted_out = False
        self._db_writes: set[asyncio.Task[Any]] = set()

    def metered(self, providers: Any) -> Any:
        """A per-call copy of the shared providers whose LLM and TTS count into this call."""
        if not dataclasses.is_dataclass(providers) or isinstance(providers, type):
            return providers  # a test double without LLM/TTS
        return dataclasses.replace(providers, llm=self.meter_llm(providers.llm),
                                   tts=MeteredTTS(providers.tts, self.units))

    def meter_llm(self, llm: Any) -> MeteredLLM:
        """`llm` counting into this call (the post-call summary too: it is this call's cost)."""
        return MeteredLLM(llm, self.units)

    # --- figures ----------------------------------------------------------------------------------
    def call_seconds(self) -> float:
        return getattr(self.s.stt, "bytes_pushed", 0) / BYTES_PER_S

    def snapshot(self, twilio_seconds: float | None = None) -> Units:
        """The units so far; call time from our clock unless Twilio's figure is given."""
        units = Units(twilio_seconds=self.call_seconds() if twilio_seconds is None else twilio_seconds,
                      stt_seconds=sum(getattr(x, "bytes_sent", 0) for x in self._stt_streams()) / BYTES_PER_S,
                      llm_tokens={p: dict(t) for p, t in self.units.llm_tokens.items()},
                      tts_characters=dict(self.units.tts_characters))
        return units

    def _stt_streams(self) -> list[Any]:
        return [self.s.stt, *getattr(self.s, "extra_stt", [])]  # the owner's voice on a bridged call too

    def cost(self, twilio_seconds: float | None = None) -> dict[str, Any]:
        return breakdown(self.snapshot(twilio_seconds), self.settings)

    def voice_to_voice_p50_ms(self) -> float | None:
        """Median end of callee speech -> first agent audio out, over the turns measured so far."""
        values = [t["first_audio_ms"] for t in self.s.metrics.turns if "first_audio_ms" in t]
        return round(percentile(values, 0.5), 1) if values else None

    # --- running ----------------------------------------------------------------------------------
    async def watch(self) -> None:
        """Publish the running cost and enforce the per-call cost limit until the call ends."""
        next_report = time.monotonic()
        while True:
            now = time.monotonic()
            cost = self.cost()
            if now >= next_report:
                next_report = now + self.settings.cost_report_s
                self.report(cost)
            await self._check_limit(float(cost["total"]), now)
            await asyncio.sleep(CHECK_S)

    def report(self, cost: dict[str, Any]) -> None:
        self.s.log.action("cost", total=cost["total"], items=cost["items"], currency=cost["currency"],
                          elapsed_s=round(self.call_seconds(), 1), v2v_p50_ms=self.voice_to_voice_p50_ms(),
                          limit=self.settings.max_call_cost)

    async def _check_limit(self, total: float, now: float) -> None:
        limit = self.settings.max_call_cost
        if not limit:
            return
        if self.limit_reached_at is not None:
            if now - self.limit_reached_at > GOODBYE_BACKSTOP_S:
                await self.s.hang_up(LIMIT_REASON)
            return
        if total + self._reserve(total, limit) >= limit:
            self.limit_reached_at = now
            self.s.log.action("limit_reached", limit="cost", total=round(total, 6), max=limit)
            self.s._spawn(self._end_at_limit())
        elif not self.warned and total >= limit * self.settings.limit_wrap_up_share:
            self.warned = True
            self.s.log.action("limit_warning", limit="cost", total=round(total, 6), max=limit)
            self.s.history.add_note(WRAP_UP_NOTE, source="system")

    def _reserve(self, total: float, limit: float) -> float:
        """What the goodbye will still cost: the burn rate over RESERVE_S of call time, at most 10% of
        the limit (so the call ends *at* the limit, not one goodbye after it)."""
        seconds = self.call_seconds()
        rate = total / seconds if seconds > 1 else 0.0
        return min(rate * RESERVE_S, 0.1 * limit)

    async def _end_at_limit(self) -> None:
        """Say goodbye in the callee's next pause (talking over them would be rude, and their speech
        would cut the goodbye short as a barge-in), then hang up once it was heard."""
        s = self.s
        deadline = time.monotonic() + GAP_WAIT_S
        # TurnTaker has no event for "callee stopped talking"; polling keeps its code untouched.
        while s.turns.pending_text and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await s._interrupt_if_speaking()
        s._start_reply(say=COST_UP_LINE, then=lambda: s.hang_up(LIMIT_REASON))
        if s._reply is not None:
            await asyncio.wait({s._reply})
        # Still here: the goodbye was cut off (the callee spoke over it); the call ends all the same.
        await s.hang_up(LIMIT_REASON)

    # --- do not call ------------------------------------------------------------------------------
    def on_callee_turn(self, text: str) -> None:
        """A callee who asks not to be called again goes on the list; the agent is told to acknowledge."""
        if self.opted_out or not dnc.asks_not_to_be_called(text):
            return
        self.opted_out = True
        info = self.s.info
        number = info.to_number if info.direction == "outbound" else info.from_number
        self.s.history.add_note(dnc.ACK_NOTE, source="system")
        self.s.log.action("do_not_call", number=number)
        task = asyncio.get_running_loop().create_task(self._add_to_list(number, text))
        self._db_writes.add(task)
        task.add_done_callback(self._db_writes.discard)

    async def _add_to_list(self, number: str, text: str) -> None:
        try:
            await dnc.add(self.s.log.writer.db, number, source="callee", reason=text,
                          call_id=self.s.info.call_id)
        except Exception as exc:  # the call goes on; the owner sees the action and can /dnc add
            logger.bind(call_id=self.s.info.call_id).error("do-not-call entry failed: {!r}", exc)


async def twilio_seconds(services: Services, call: Call, *, attempts: int = 15,
                         wait_s: float = 0.2) -> float | None:
    """Call duration as Twilio bills it: the status callback's CallDuration if it came, else the call
    resource's `duration` (set once Twilio has completed the call; we may be a moment ahead of it)."""
    if call.duration_s is not None and call.status == "completed":
        return float(call.duration_s)
    if not call.twilio_sid:
        return None
    for _ in range(attempts):
        try:
            resource = await services.telephony.client.calls(call.twilio_sid).fetch_async()
        except Exception as exc:  # best effort: our own clock stands in
            logger.bind(call_id=call.id).warning("call duration lookup failed: {!r}", exc)
            return None
        if resource.duration not in (None, ""):
            return float(resource.duration)
        await asyncio.sleep(wait_s)
    return None


async def final_cost(services: Services, call: Call, usage: CallUsage, *,
                     wait: bool = True) -> tuple[float, dict[str, Any]]:
    """(billed call seconds, cost breakdown) at the end of the call. `wait=False` when the call goes on
    without us (transferred): its duration is not known yet, so our own call clock stands in."""
    seconds = await twilio_seconds(services, call, attempts=15 if wait else 1)
    if seconds is None:
        seconds = usage.call_seconds()
    return seconds, usage.cost(seconds)
