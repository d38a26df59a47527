"""Call-summary answers for the LLM emulators, derived from the conversation text itself.

After a call the product asks the model for a summary (outcome, facts obtained, next steps). A
scripted brain cannot know the scenario's facts in advance, so this module reads them out of the
transcript with regexes, the way a model would: reference/confirmation numbers, dates, times and
amounts, plus sentences that announce a follow-up. Field names are configurable because the
product defines the exact schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_ORD = r"\d{1,2}(?:st|nd|rd|th)?"

DEFAULT_FACT_PATTERNS: list[tuple[str, str]] = [
    # "{1} number": the value must contain a digit so "reference number is below" finds nothing.
    ("{1} number", r"\b(reference|confirmation|booking|order|case|claim|ticket|tracking|policy|account|member"
                   r"|invoice|appointment)\s*(?:number|no\.?|#|code|id)?\s*(?:is|was|will be|:|=)?\s*"
                   r"([A-Z0-9]*\d[A-Z0-9]*(?:[- ]?[A-Z0-9]*\d[A-Z0-9]*)*|[A-Z]{1,4}-[A-Z0-9-]*\d[A-Z0-9-]*)"),
    ("date", rf"\b({_DAY}(?:,?\s+(?:the\s+)?{_ORD}(?:\s+of)?(?:\s+{_MONTH})?|,?\s+{_MONTH}\s+{_ORD})?"
             rf"|{_MONTH}\s+{_ORD}(?:,?\s+\d{{4}})?|{_ORD}\s+(?:of\s+)?{_MONTH}(?:\s+\d{{4}})?"
             r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})\b"),
    ("time", r"\b(\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2})"),
    ("amount", r"([$€£]\s?\d[\d,]*(?:\.\d{2})?"
               r"|\b\d[\d,]*(?:\.\d{2})?\s?(?:dollars|euros|pounds|usd|eur|gbp)\b)"),
]

DEFAULT_OUTCOMES: list[tuple[str, str]] = [
    ("voicemail", r"voicemail|leave (?:a|your) message|after the (?:tone|beep)"),
    ("success", r"\b(?:confirm(?:ed|ation)|booked|scheduled|all set|reference|approved|processed|"
                r"arranged|cancelled|canceled|updated)\b"),
    ("failed", r"\b(?:can't|cannot|unable|not able|no record|not possible|unfortunately|"
               r"declined?|refused?)\b"),
]

NEXT_STEP_PATTERN = (r"\b(?:call (?:us |me |you )?back|will (?:send|email|call|mail|text|get back)|"
                     r"you(?:'ll| will) (?:receive|get|need)|please (?:bring|send|call|arrive)|within \d+|"
                     r"next step|follow[- ]up|need to|should (?:arrive|bring|call|expect))")


@dataclass
class SummaryConfig:
    """Field names of the summary object, and how facts, outcome and next steps are found."""

    outcome: str = "outcome"
    facts: str = "facts"
    label: str = "label"
    value: str = "value"
    next_steps: str = "next_steps"
    summary: str = "summary"
    tool_pattern: str = r"summar"
    """A tool whose name matches this is the summary tool (submit_summary, record_summary ...)."""
    fact_patterns: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_FACT_PATTERNS))
    """(label, regex); the last group is the value; ``{1}`` in a label is the first group, lowercased."""
    outcomes: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_OUTCOMES))
    """(outcome, regex) tried in order, except that found facts make it "success" unless voicemail."""
    default_outcome: str = "unclear"


def asks_for_summary(request_text: str, json_output: bool = False) -> bool:
    """True when the instructions ask for a summary as JSON."""
    lowered = request_text.lower()
    return "summar" in lowered and ("json" in lowered or json_output)


def find_facts(text: str, cfg: SummaryConfig) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    for label, pattern in cfg.fact_patterns:
        for found in re.finditer(pattern, text, re.IGNORECASE):
            value = (found.groups() or (found.group(0),))[-1].strip().rstrip(".,")
            name = label.replace("{1}", (found.group(1) or "").lower()) if found.groups() else label
            if value and (name, value) not in facts:
                facts.append((name, value))
    return facts


def guess_outcome(text: str, has_facts: bool, cfg: SummaryConfig) -> str:
    hits = [name for name, pattern in cfg.outcomes if re.search(pattern, text, re.IGNORECASE)]
    if "voicemail" in hits:
        return "voicemail"
    if has_facts and any(name == "success" for name, _ in cfg.outcomes):
        return "success"
    return hits[0] if hits else cfg.default_outcome


def find_next_steps(text: str) -> list[str]:
    steps: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        sentence = re.sub(r"^\s*\w+:\s*", "", sentence).strip()
        if sentence and re.search(NEXT_STEP_PATTERN, sentence, re.IGNORECASE) and sentence not in steps:
            steps.append(sentence)
    return steps[:5]


def summarise(transcript: str, cfg: SummaryConfig | None = None) -> dict[str, object]:
    """The summary object for ``transcript`` ("role: text" lines), keyed by ``cfg``'s field names."""
    cfg = cfg or SummaryConfig()
    facts = find_facts(transcript, cfg)
    outcome = guess_outcome(transcript, bool(facts), cfg)
    steps = find_next_steps(transcript)
    parts = [f"Outcome: {outcome}."]
    if facts:
        parts.append("Obtained " + "; ".join(f"{label}: {value}" for label, value in facts) + ".")
    if steps:
        parts.append("Next: " + " ".join(steps))
    return {
        cfg.outcome: outcome,
        cfg.facts: [{cfg.label: label, cfg.value: value} for label, value in facts],
        cfg.next_steps: steps,
        cfg.summary: " ".join(parts),
    }
