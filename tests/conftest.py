"""Shared fixtures: fresh settings per test, a fresh SQLite file per test, PostgreSQL and Redis when asked."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from shared.config import Settings, get_settings, load_settings
from shared.db import Database
from shared.migrate import upgrade_async

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _unavailable(what: str, exc: Exception) -> None:
    # In CI the services are started by .ci/run, so their absence is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but unreachable: {exc}")
    pytest.skip(f"{what} not reachable: {exc}")


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """No test sees the developer's .env or another test's cached settings."""
    for name in list(os.environ):
        if name in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path}/dialer.db"


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated, empty SQLite database of its own for each test."""
    await upgrade_async(sqlite_url)
    database = Database(sqlite_url)
    yield database
    await database.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    import asyncpg

    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"dialer_test_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(admin, timeout=5)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
        raise
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_TEST_URL)
    try:
        await client.ping()
    except Exception as exc:
        _unavailable("Redis", exc)
        raise
    await client.flushdb()
    yield REDIS_TEST_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def settings_factory(sqlite_url: str):  # type: ignore[no-untyped-def]
    """Build Settings with test defaults plus overrides (keyword names are field names)."""

    def make(**overrides: object) -> Settings:
        base: dict[str, object] = {"database_url": sqlite_url}
        base.update(overrides)
        return load_settings(**base)

    return make


@pytest.fixture
def call_stack(sqlite_url: str):  # type: ignore[no-untyped-def]
    """The whole rig (emulators + call server + db + bus), as a context manager factory:
    `async with call_stack(brain=..., speed=8) as stack:` -> dialer.demo.CallStack."""
    import functools

    from dialer.demo import call_stack as start

    return functools.partial(start, db_url=sqlite_url)


# --- LLM providers through the real SDKs, against sim's emulators --------------------------------------
@pytest.fixture
async def openai_sim() -> AsyncIterator[tuple[Any, Any]]:
    """(emulator, OpenAILLM) with a fast scripted emulator; script replies on ``emulator.replies``."""
    from callserver.llm.openai import OpenAILLM
    from sim.llm_script import ReplyQueue
    from sim.openai import create_openai_app
    from sim.server import serve

    emu = create_openai_app(ReplyQueue(), ttft_s=0.01, tokens_per_s=2000)
    async with serve(emu.app) as url:
        llm = OpenAILLM(api_key="k", base_url=f"{url}/v1", model="gpt-test")
        yield emu, llm
        await llm.close()


@pytest.fixture
async def anthropic_sim() -> AsyncIterator[tuple[Any, Any]]:
    """(emulator, AnthropicLLM), as ``openai_sim``."""
    from callserver.llm.anthropic import AnthropicLLM
    from sim.anthropic import create_anthropic_app
    from sim.llm_script import ReplyQueue
    from sim.server import serve

    emu = create_anthropic_app(ReplyQueue(), ttft_s=0.01, tokens_per_s=2000)
    async with serve(emu.app) as url:
        llm = AnthropicLLM(api_key="k", base_url=url, model="claude-test")
        yield emu, llm
        await llm.close()
