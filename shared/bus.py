"""Event bus: in-process asyncio queues by default, Redis Streams to scale out.

Publishing never waits on a slow subscriber: in-process queues are unbounded and Redis XADD is one
round trip, so the call server can publish from the audio path's side tasks without stalls. Each
subscriber sees every event published after it subscribed, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from loguru import logger
from pydantic import BaseModel

from shared.events import TOPIC_MODELS


class EventBus(Protocol):
    async def publish(self, topic: str, event: BaseModel) -> None: ...

    def subscribe(self, *topics: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


class Subscription:
    """An async iterator of (topic, event) pairs."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, BaseModel]] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[tuple[str, BaseModel]]:
        return self

    async def __anext__(self) -> tuple[str, BaseModel]:
        return await self.queue.get()

    async def get(self, timeout: float | None = None) -> tuple[str, BaseModel]:
        return await asyncio.wait_for(self.queue.get(), timeout)


class InProcessBus:
    """Fan-out to every subscriber's queue inside one process."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    async def publish(self, topic: str, event: BaseModel) -> None:
        for sub in self._subs.get(topic, ()):
            sub.queue.put_nowait((topic, event))

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        for topic in topics:
            self._subs.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            for topic in topics:
                self._subs.get(topic, set()).discard(sub)

    async def close(self) -> None:
        self._subs.clear()


class RedisBus:
    """Redis Streams: XADD per topic, each subscriber reads with XREAD from where it subscribed."""

    def __init__(self, url: str, maxlen: int = 10_000, prefix: str = "dialer:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._maxlen = maxlen
        self._prefix = prefix

    async def publish(self, topic: str, event: BaseModel) -> None:
        await self._redis.xadd(
            self._prefix + topic, {"data": event.model_dump_json()}, maxlen=self._maxlen, approximate=True
        )

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        # "Where it subscribed" is the stream's last id now, taken before the reader starts, so
        # nothing published after subscribe() returns is missed.
        last: dict[str, str] = {}
        for topic in topics:
            info = await self._redis.xinfo_stream(self._prefix + topic) if await self._redis.exists(
                self._prefix + topic) else None
            last[self._prefix + topic] = info["last-generated-id"].decode() if info else "0-0"
        reader = asyncio.create_task(self._read(sub, last))
        try:
            yield sub
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, sub: Subscription, last: dict[str, str]) -> None:
        while True:
            try:
                batches = await self._redis.xread(last, block=1000, count=500)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a Redis blip must not kill the subscriber: retry
                logger.warning("redis bus read failed: {}", exc)
                await asyncio.sleep(0.5)
                continue
            for stream, entries in batches or []:
                key = stream.decode() if isinstance(stream, bytes) else stream
                topic = key.removeprefix(self._prefix)
                model = TOPIC_MODELS[topic]
                for entry_id, fields in entries:
                    last[key] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    sub.queue.put_nowait((topic, model.model_validate_json(fields[b"data"])))

    async def close(self) -> None:
        await self._redis.aclose()


def create_bus(redis_url: str) -> EventBus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
