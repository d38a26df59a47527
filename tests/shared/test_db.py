"""The embedded SQLite database takes many concurrent writers without "database is locked"."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from shared.db import Database, async_url, sync_url
from shared.models import Call, CallEvent


def test_urls_pick_drivers() -> None:
    assert async_url("sqlite:///data/x.db") == "sqlite+aiosqlite:///data/x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert sync_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert sync_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"


async def test_concurrent_read_then_write_transactions(db: Database) -> None:
    async with db.session() as s:
        call = Call(to_number="+12125550100", task="t")
        s.add(call)
        await s.commit()
        call_id = call.id
    assert call_id is not None

    async def worker(n: int) -> None:
        for i in range(5):
            async with db.session() as s:
                # read first, then write: the pattern that deadlocks deferred SQLite transactions
                row = await s.get(Call, call_id)
                assert row is not None
                s.add(CallEvent(call_id=call_id, type="t", payload={"n": n, "i": i}))
                row.status = f"w{n}"
                s.add(row)
                await s.commit()

    await asyncio.gather(*(worker(n) for n in range(40)))
    async with db.session() as s:
        events = (await s.exec(select(CallEvent))).all()
    assert len(events) == 200
