"""Async database engine and sessions; the URL may name a driver or not, the code picks one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def async_url(url: str) -> str:
    """`sqlite:///x` -> `sqlite+aiosqlite:///x`; `postgres(ql)://` -> `postgresql+asyncpg://`."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("postgresql+psycopg2://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql+psycopg2://")
    return url


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (APScheduler's job store needs one).

    psycopg2 is named explicitly: SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3.
    """
    url = async_url(url)
    return url.replace("sqlite+aiosqlite://", "sqlite://").replace(
        "postgresql+asyncpg://", "postgresql+psycopg2://"
    )


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout just works."""
    if url.startswith("sqlite") and ":memory:" not in url:
        path = url.split(":///", 1)[-1]
        if path:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    ensure_sqlite_dir(url)
    engine = create_async_engine(async_url(url), pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the bot read while the call server's writer writes; FKs are off by default.
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # Transactions are begun by us (below), not by the driver's implicit deferred BEGIN.
            conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
            # A deferred transaction that reads and then writes cannot wait for the write lock: SQLite
            # answers "database is locked" at once when another connection writes. Taking the lock at
            # BEGIN makes every writer queue behind the busy timeout instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


class Database:
    """One engine per process and a session factory around it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
