"""Never dead air: retry the provider once, then the fallback provider, then a short spoken apology.

Only a failure before the first event is retried: once words have been streamed (and maybe spoken),
replaying the request would repeat them, so a mid-reply failure just ends the reply there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from loguru import logger

from callserver.history import History
from callserver.llm.base import LLM, Done, LLMEvent, TextDelta
from callserver.tools import ToolDef

APOLOGY = "Sorry, I'm having a bit of trouble on my end. Could you say that again?"


class ResilientLLM:
    def __init__(self, primary: LLM, fallback: LLM | None = None, *, timeout_s: float = 8.0,
                 apology: str = APOLOGY) -> None:
        self.primary = primary
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.apology = apology
        self.name = primary.name
        self.failures = 0

    @property
    def attempts(self) -> list[LLM]:
        return [self.primary, self.primary, *([self.fallback] if self.fallback else [])]

    async def stream(self, history: History, tools: list[ToolDef]) -> AsyncIterator[LLMEvent]:
        for attempt, llm in enumerate(self.attempts, 1):
            produced = False
            try:
                async with contextlib.aclosing(llm.stream(history, tools)) as events:  # type: ignore[type-var]
                    while True:
                        try:
                            async with asyncio.timeout(self.timeout_s):
                                event = await anext(events)
                        except StopAsyncIteration:
                            return
                        produced = True
                        yield event
            except Exception as exc:  # any provider/SDK/network failure: the call must keep talking
                self.failures += 1
                if produced:
                    logger.warning("{} failed mid-reply ({}): ending the reply there", llm.name, exc)
                    yield Done("error")
                    return
                logger.warning("{} attempt {} failed: {!r}", llm.name, attempt, exc)
        yield TextDelta(self.apology)
        yield Done("apology")

    async def close(self) -> None:
        await self.primary.close()
        if self.fallback is not None:
            await self.fallback.close()
