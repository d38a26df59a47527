from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dialer.cli import app
from shared.config import SettingsError, load_settings


def test_lists_accept_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "111, 222")
    monkeypatch.setenv("ALLOWED_COUNTRY_CODES", "us,gb")
    settings = load_settings()
    assert settings.telegram_allowed_users == [111, 222]
    assert settings.allowed_country_codes == ["US", "GB"]
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "[333]")
    assert load_settings().telegram_allowed_users == [333]


def test_env_file_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("LLM_PROVIDER=anthropic\nPUBLIC_BASE_URL=https://calls.example.com/\n")
    settings = load_settings()
    assert settings.llm_provider == "anthropic"
    assert settings.media_ws_url == "wss://calls.example.com/twilio/media"


def test_bad_value_names_variable_and_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "gemini")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "LLM_PROVIDER" in message
    assert "'openai' or 'anthropic'" in message
    assert "gemini" in message


def test_require_reports_missing_and_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID is not set"):
        settings.require("TWILIO_ACCOUNT_SID")
    monkeypatch.setenv("OPENAI_API_KEY", "changeme")
    with pytest.raises(SettingsError, match="OPENAI_API_KEY still holds the placeholder"):
        load_settings().require("OPENAI_API_KEY")


def test_cli_bad_env_gives_one_clear_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "Invalid setting PORT" in result.output
    assert "Traceback" not in result.output


def test_cli_command_asks_only_for_what_it_needs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0  # needs no credentials
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.output


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for command in ("run", "callserver", "bot", "demo", "db"):
        assert command in result.output
    assert CliRunner().invoke(app, ["--version"]).output.startswith("dialer ")


def test_env_example_documents_every_setting() -> None:
    from pathlib import Path

    from shared.config import Settings

    text = (Path(__file__).parents[2] / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"\n{name.upper()}=" in text, name


def test_env_example_documents_schedule_settings() -> None:
    from pathlib import Path

    from shared.scheduling.policy import ScheduleSettings

    text = (Path(__file__).parents[2] / ".env.example").read_text()
    for name in ScheduleSettings.model_fields:
        assert f"\nSCHEDULE_{name.upper()}=" in text, name
