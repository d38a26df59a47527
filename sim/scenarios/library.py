"""The shipped callee scenarios and the default number -> scenario registry."""

from __future__ import annotations

from sim.scenarios.engine import Scenario
from sim.scenarios.steps import (
    branch,
    hangup,
    hold,
    interrupt_after,
    menu,
    say,
    voicemail,
    wait_for_agent,
)


def prior_auth(hold_s: float = 45, announcement_every_s: float = 15, reference: str = "PA-48213",
               ring_ms: float = 2500) -> Scenario:
    """Payer IVR -> second-level menu -> hold -> Dana, who takes member ID and date of birth."""
    dana = [
        hold(hold_s, announcement_every_s, "Thank you for holding. Your call is important to us. "
             "A representative will be with you shortly."),
        say("Hi, this is Dana in prior authorisations. Can I have the member ID, please?"),
        wait_for_agent(silence_ms=900),
        branch(r"\d", [], [say("Sorry, I didn't catch a member ID. What is it?"),
                           wait_for_agent(silence_ms=900)]),
        say("Thank you. And the member's date of birth?"),
        wait_for_agent(silence_ms=900),
        say(f"Thanks, I have the request open. Your reference number is {reference}. "
            "Is there anything else?"),
        wait_for_agent(silence_ms=900, timeout=8000),
        say("You're welcome. Goodbye."),
        hangup(),
    ]
    second = menu("For a new prior authorisation request, press 1. To check an existing request, press 2.",
                  {"1": dana, "2": dana})
    first = menu("Thank you for calling Acme Health provider services. For eligibility, press 1. "
                 "For prior authorisation, press 2.",
                 {"1": [say("Eligibility verification is available on our website. Goodbye."), hangup()],
                  "2": [second]})
    return Scenario("prior_auth", [first], ring_ms=ring_ms)


def friendly_human(ring_ms: float = 2000) -> Scenario:
    return Scenario("friendly_human", [
        say("Hello?"),
        wait_for_agent(silence_ms=800),
        say("Sure, that works for me."),
        wait_for_agent(silence_ms=800),
        say("Okay, thanks. Goodbye!"),
        wait_for_agent(silence_ms=800, timeout=5000),
        hangup(),
    ], ring_ms=ring_ms)


def interrupting_human(ring_ms: float = 2000) -> Scenario:
    return Scenario("interrupting_human", [
        say("Hello, who's this?"),
        interrupt_after(900, "Sorry, sorry, who did you say you are?"),
        interrupt_after(1200, "Wait, can you just get to the point?"),
        wait_for_agent(silence_ms=800),
        say("Okay, fine. Bye."),
        hangup(),
    ], ring_ms=ring_ms)


def voicemail_box(greeting: str = "Hi, you've reached Sam. I can't take your call right now. "
                  "Please leave a message after the tone.") -> Scenario:
    return Scenario("voicemail", [voicemail(greeting)], outcome="voicemail", answered_by="machine_end_beep",
                    ring_ms=4000, amd_ms=1500)


def busy() -> Scenario:
    return Scenario("busy", [], outcome="busy", ring_ms=500)


def no_answer() -> Scenario:
    return Scenario("no_answer", [], outcome="no-answer")


def failed() -> Scenario:
    return Scenario("failed", [], outcome="failed")


SCENARIOS = {"prior_auth": prior_auth, "friendly_human": friendly_human,
             "interrupting_human": interrupting_human, "voicemail": voicemail_box, "busy": busy,
             "no_answer": no_answer, "failed": failed}

DEFAULT_NUMBERS = {
    "+12125550100": "prior_auth",
    "+12125550101": "friendly_human",
    "+12125550102": "interrupting_human",
    "+12125550103": "voicemail",
    "+12125550104": "busy",
    "+12125550105": "no_answer",
    "+12125550106": "failed",
}


def default_registry() -> dict[str, Scenario]:
    """Fresh scenarios for the demo numbers (each call gets its own Callee; scenarios are plain data)."""
    return {number: SCENARIOS[name]() for number, name in DEFAULT_NUMBERS.items()}
