"""Scheduled calls (issue 6): natural times, calling windows, retries, and APScheduler on our database."""

from shared.scheduling.policy import ScheduleSettings, attempt_result, should_retry
from shared.scheduling.scheduler import CallScheduler, Clock, Notify, PlaceCall, callee_window
from shared.scheduling.when import WhenError, describe, merge_number_tokens, parse_when, split_command
from shared.scheduling.window import CallingWindow, WindowError

__all__ = [
    "CallScheduler", "CallingWindow", "Clock", "Notify", "PlaceCall", "ScheduleSettings", "WhenError",
    "WindowError", "attempt_result", "callee_window", "describe", "merge_number_tokens", "parse_when",
    "should_retry", "split_command",
]
