"""The migrated schema equals the models, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import shared.models  # noqa: F401
from shared.db import create_engine
from shared.migrate import upgrade_async


async def _diff(url: str) -> list:  # type: ignore[type-arg]
    engine = create_engine(url)
    async with engine.connect() as conn:
        def compare(sync_conn):  # type: ignore[no-untyped-def]
            ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return compare_metadata(ctx, SQLModel.metadata)

        def tables(sync_conn):  # type: ignore[no-untyped-def]
            return set(inspect(sync_conn).get_table_names())

        diff = await conn.run_sync(compare)
        names = await conn.run_sync(tables)
    await engine.dispose()
    assert {"user", "call", "transcriptline", "callevent", "scheduledcall", "contact"} <= names
    return diff


async def test_sqlite_schema_matches_models(sqlite_url: str) -> None:
    await upgrade_async(sqlite_url)
    assert await _diff(sqlite_url) == []


async def test_postgres_schema_matches_models(pg_url: str) -> None:
    await upgrade_async(pg_url)
    assert await _diff(pg_url) == []
    await upgrade_async(pg_url)  # idempotent: a second run is a no-op
