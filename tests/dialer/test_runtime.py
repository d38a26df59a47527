"""dialer.runtime.raise_priority: the call server's CPU priority (Linux keeps nice per thread, so each case
runs in a thread of its own and the test process keeps its priority)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from dialer.runtime import raise_priority
from shared.config import Settings, SettingsError, load_settings


def in_thread(fn: Callable[[], int]) -> tuple[int, int, int]:
    """(nice before, what ``fn`` returned, nice after) in a new thread."""
    out: list[int] = []

    def run() -> None:
        before = os.getpriority(os.PRIO_PROCESS, 0)
        result = fn()
        out.extend((before, result, os.getpriority(os.PRIO_PROCESS, 0)))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0], out[1], out[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="a negative nice step needs root or CAP_SYS_NICE")
def test_priority_is_raised_for_the_thread_and_the_threads_it_starts() -> None:
    def raise_then_spawn() -> int:
        got = raise_priority(os.getpriority(os.PRIO_PROCESS, 0) - 3)
        child: list[int] = []
        worker = threading.Thread(target=lambda: child.append(os.getpriority(os.PRIO_PROCESS, 0)))
        worker.start()
        worker.join()
        assert child == [got]  # a worker thread started later (e.g. asyncio.to_thread) inherits it
        return got

    before, got, after = in_thread(raise_then_spawn)
    assert got == after == before - 3
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this thread untouched


def test_a_higher_priority_already_in_effect_is_kept() -> None:
    before, got, after = in_thread(lambda: raise_priority(os.getpriority(os.PRIO_PROCESS, 0) + 5))
    assert got == after == before


def test_refused_priority_keeps_running_at_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    before, got, after = in_thread(lambda: raise_priority(os.getpriority(os.PRIO_PROCESS, 0) - 3))
    assert got == after == before


def test_callserver_nice_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().callserver_nice == -5
    monkeypatch.setenv("CALLSERVER_NICE", "0")
    assert load_settings().callserver_nice == 0
    monkeypatch.setenv("CALLSERVER_NICE", "-21")
    with pytest.raises(SettingsError, match="CALLSERVER_NICE"):
        load_settings()
