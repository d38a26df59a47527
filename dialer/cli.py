"""`dialer` command line. Each command loads only the settings it needs and reports bad ones in one line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from dialer import __version__
from shared.config import Settings, SettingsError, get_settings
from shared.logs import setup_logging

app = typer.Typer(
    help="dialer: a Telegram bot that places AI phone calls for you and lets you steer them from the chat.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _settings(*required: str) -> Settings:
    try:
        settings = get_settings()
        settings.require(*required)
    except SettingsError as exc:
        _fail(f"Configuration error: {exc}\nSee .env.example for every setting.")
        raise AssertionError from None  # unreachable: _fail raises
    setup_logging(settings.log_level, settings.secrets())
    return settings


def _run(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    from dialer.runtime import loop_factory

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(coro_factory())
    except KeyboardInterrupt:
        pass
    except SettingsError as exc:
        _fail(f"Configuration error: {exc}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dialer {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """dialer: AI phone calls placed, watched and steered from Telegram."""


CALL_SERVER_SETTINGS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "DEEPGRAM_API_KEY")
BOT_SETTINGS = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_USERS")


def _provider_settings(settings: Settings) -> tuple[str, ...]:
    llm = "OPENAI_API_KEY" if settings.llm_provider == "openai" else "ANTHROPIC_API_KEY"
    tts = "ELEVENLABS_API_KEY" if settings.tts_provider == "elevenlabs" else "DEEPGRAM_API_KEY"
    return llm, tts


@app.command()
def run() -> None:
    """Run everything in one process: call server, Telegram bot and scheduler (SQLite, in-process bus)."""
    settings = _settings(*CALL_SERVER_SETTINGS, *BOT_SETTINGS)
    settings.require(*_provider_settings(settings))
    from dialer.runtime import raise_priority, run_all

    raise_priority(settings.callserver_nice)
    _run(lambda: run_all(settings, with_bot=True, with_callserver=True))


@app.command()
def callserver() -> None:
    """Run only the call server (Twilio webhooks + media streams). Scale out behind a load balancer."""
    settings = _settings(*CALL_SERVER_SETTINGS)
    settings.require(*_provider_settings(settings))
    from dialer.runtime import raise_priority, run_all

    raise_priority(settings.callserver_nice)
    _run(lambda: run_all(settings, with_bot=False, with_callserver=True))


@app.command()
def bot() -> None:
    """Run only the Telegram bot and the scheduler; talks to call servers through Redis and the database."""
    settings = _settings(*BOT_SETTINGS, "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
    from dialer.runtime import run_all

    _run(lambda: run_all(settings, with_bot=True, with_callserver=False))


@app.command()
def demo(
    scenario: str = typer.Option(
        "prior_auth",
        help="Callee scenario: prior_auth, friendly_human, interrupting_human, voicemail, busy or no_answer.",
    ),
    llm: str = typer.Option("openai", help="Emulated LLM provider: openai or anthropic."),
    speed: float = typer.Option(
        1.0, min=0.5, max=20.0,
        help="Run the emulated phone line faster (hold music passes quicker; the emulated LLM and TTS "
        "still stream in real time, so above 1 the agent may seem to pause).",
    ),
) -> None:
    """Place a call through local emulators of every outside service and print it live. No credentials."""
    setup_logging("WARNING")
    from dialer.demo import run_demo

    _run(lambda: run_demo(scenario=scenario, llm=llm, speed=speed))


@app.command()
def sim() -> None:
    """Run the emulators of Twilio, Deepgram, OpenAI, Anthropic, ElevenLabs and Telegram on 127.0.0.1."""
    setup_logging("INFO")
    from sim.__main__ import main as sim_main

    sim_main([])


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    settings = _settings()
    from shared.migrate import upgrade

    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {revision}")


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.secho(f"Configuration error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
