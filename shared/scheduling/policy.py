"""Scheduling settings (env SCHEDULE_*) and the retry decision after each attempt."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models import Call

# Twilio's final call statuses, plus what the summary / AMD adds ("voicemail").
FINAL_STATUSES = {"completed", "busy", "no-answer", "failed", "canceled"}
RETRY_ON = {"busy", "no-answer", "failed", "voicemail", "interrupted"}


class ScheduleSettings(BaseSettings):
    """Defaults for new scheduled calls; each row keeps its own copy, so a change never moves old jobs."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULE_", env_file=".env", extra="ignore")

    max_ahead_days: int = Field(90, ge=1, le=3650, description="furthest a call can be scheduled (days)")
    grace_minutes: int = Field(
        15, ge=0, le=1440, description="a job missed while down still runs at start if this late at most"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="attempts per scheduled call, the first included")
    retry_delay_minutes: int = Field(30, ge=1, le=1440, description="wait between attempts (minutes)")
    window_start: str = Field("08:00", description="calling window opens, callee's local time (HH:MM)")
    window_end: str = Field("20:00", description="calling window closes, callee's local time (HH:MM)")
    window_days: str = Field("mon-fri", description="calling days, e.g. mon-fri, mon-sat, all")
    poll_seconds: float = Field(
        30.0, gt=0, description="how often each process re-reads the shared job store for others' jobs"
    )
    claim_lease_seconds: float = Field(
        120.0, ge=10, description="a claimed attempt with no call after this long was cut off (process died)"
    )

    @property
    def max_ahead(self) -> timedelta:
        return timedelta(days=self.max_ahead_days)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.grace_minutes)

    @property
    def claim_lease(self) -> timedelta:
        return timedelta(seconds=self.claim_lease_seconds)


def attempt_result(call: Call) -> str:
    """What an ended attempt came to: busy | no-answer | failed | voicemail | canceled | completed."""
    outcome = call.outcome.replace("_", "-")
    if call.answered_by.startswith("machine") or call.answered_by == "fax" or outcome == "voicemail":
        return "voicemail"
    if call.status in ("busy", "no-answer", "failed", "canceled"):
        return call.status
    if outcome in ("busy", "no-answer"):
        return outcome
    return "completed"


def should_retry(result: str, attempts: int, max_attempts: int) -> bool:
    return result in RETRY_ON and attempts < max_attempts
