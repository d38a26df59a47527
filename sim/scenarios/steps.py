"""The callee step language. Each step is plain data; ``engine.Callee`` runs them against a phone line.

Times are call milliseconds (they scale with the network's speed factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Say:
    text: str
    rate: float = 1.0


@dataclass
class Pause:
    ms: float


@dataclass
class WaitForAgent:
    """Until the agent has spoken and then been silent ``silence_ms``, or said ``phrase`` (a regex)."""

    silence_ms: float = 800
    phrase: str | None = None
    timeout_ms: float = 20000


@dataclass
class InterruptAfter:
    """Start talking over the agent ``ms`` after it starts speaking."""

    ms: float
    text: str
    timeout_ms: float = 20000


@dataclass
class Menu:
    """IVR: play ``prompt``, wait for a key (or a spoken option matching a route regex), then route."""

    prompt: str
    routes: dict[str, list[Step]]
    timeout_ms: float = 6000
    repeats: int = 2
    default: list[Step] | None = None
    """Run when no valid choice came after the repeats (None: say goodbye and hang up)."""


@dataclass
class CollectDigits:
    """Keypad entry ended by ``until``; with ``expect``, a wrong entry is refused and asked again."""

    prompt: str
    until: str = "#"
    expect: str | None = None
    timeout_ms: float = 10000
    retries: int = 2


@dataclass
class Hold:
    seconds: float
    announcement_every: float | None = 30
    announcement: str = "Your call is important to us. Please stay on the line."


@dataclass
class Voicemail:
    """Greeting, beep, then record what the agent says until ``silence_ms`` of silence."""

    greeting: str
    silence_ms: float = 3000
    max_ms: float = 120000


@dataclass
class Hangup:
    pass


@dataclass
class Branch:
    """Run ``then`` if ``pattern`` matches the agent's last turn, else ``otherwise``."""

    pattern: str
    then: list[Step] = field(default_factory=list)
    otherwise: list[Step] = field(default_factory=list)


Step = Say | Pause | WaitForAgent | InterruptAfter | Menu | CollectDigits | Hold | Voicemail | Hangup | Branch


# Lower-case builders, so scenarios read like the step language of the brief.
def say(text: str, rate: float = 1.0) -> Say:
    return Say(text, rate)


def pause(ms: float) -> Pause:
    return Pause(ms)


def wait_for_agent(silence_ms: float = 800, phrase: str | None = None,
                   timeout: float = 20000) -> WaitForAgent:
    return WaitForAgent(silence_ms, phrase, timeout)


def interrupt_after(ms: float, text: str, timeout: float = 20000) -> InterruptAfter:
    return InterruptAfter(ms, text, timeout)


def menu(prompt: str, routes: dict[str, list[Step]], timeout: float = 6000, repeats: int = 2,
         default: list[Step] | None = None) -> Menu:
    return Menu(prompt, routes, timeout, repeats, default)


def collect_digits(prompt: str, until: str = "#", expect: str | None = None, timeout: float = 10000,
                   retries: int = 2) -> CollectDigits:
    return CollectDigits(prompt, until, expect, timeout, retries)


def hold(seconds: float, announcement_every: float | None = 30,
         announcement: str = "Your call is important to us. Please stay on the line.") -> Hold:
    return Hold(seconds, announcement_every, announcement)


def voicemail(greeting: str, silence_ms: float = 3000, max_ms: float = 120000) -> Voicemail:
    return Voicemail(greeting, silence_ms, max_ms)


def hangup() -> Hangup:
    return Hangup()


def branch(pattern: str, then: list[Step], otherwise: list[Step] | None = None) -> Branch:
    return Branch(pattern, then, otherwise or [])
