"""Scripted callees for the phone emulator: a small step language, its engine and shipped scenarios."""

from sim.scenarios.engine import Callee, Scenario
from sim.scenarios.library import DEFAULT_NUMBERS, SCENARIOS, default_registry
from sim.scenarios.loader import load_scenario, scenario_from

__all__ = ["DEFAULT_NUMBERS", "SCENARIOS", "Callee", "Scenario", "default_registry", "load_scenario",
           "scenario_from"]
