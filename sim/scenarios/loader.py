"""Load a scenario from YAML (or any dict), e.g.::

    name: pharmacy
    ring_ms: 1500
    steps:
      - say: Hello, pharmacy.
      - wait_for_agent: {silence_ms: 800}
      - menu:
          prompt: Press 1 for refills.
          routes:
            "1": [{say: Refills.}, hangup]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim.scenarios import steps as s
from sim.scenarios.engine import Scenario

_SIMPLE = {"say": s.Say, "pause": s.Pause, "wait_for_agent": s.WaitForAgent,
           "interrupt_after": s.InterruptAfter, "collect_digits": s.CollectDigits, "hold": s.Hold,
           "voicemail": s.Voicemail}
_POSITIONAL = {"say": "text", "pause": "ms", "hold": "seconds", "voicemail": "greeting",
               "collect_digits": "prompt"}
_RENAMES = {"timeout": "timeout_ms"}


def step_from(data: Any) -> s.Step:
    if data == "hangup" or data == {"hangup": None}:
        return s.Hangup()
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"a step is one key: {data!r}")
    (kind, args), = data.items()
    if kind == "menu":
        routes = {str(k): steps_from(v) for k, v in args["routes"].items()}
        default = steps_from(args["default"]) if "default" in args else None
        return s.Menu(args["prompt"], routes, args.get("timeout", 6000), args.get("repeats", 2), default)
    if kind == "branch":
        return s.Branch(args["pattern"], steps_from(args.get("then", [])),
                        steps_from(args.get("otherwise", [])))
    if kind not in _SIMPLE:
        raise ValueError(f"unknown step {kind!r}")
    if not isinstance(args, dict):
        args = {_POSITIONAL[kind]: args}
    return _SIMPLE[kind](**{_RENAMES.get(k, k): v for k, v in args.items()})


def steps_from(items: list[Any]) -> list[s.Step]:
    return [step_from(item) for item in items]


def scenario_from(data: dict[str, Any]) -> Scenario:
    extra = {k: data[k] for k in ("outcome", "answered_by", "ring_ms", "amd_ms") if k in data}
    return Scenario(data["name"], steps_from(data.get("steps", [])), **extra)


def load_scenario(path: str | Path) -> Scenario:
    return scenario_from(yaml.safe_load(Path(path).read_text()))
