"""Compose the agent's system prompt and opening line from the task and the owner's profile."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TASK_CHARS = 1500


@dataclass(frozen=True)
class Profile:
    full_name: str = ""
    organisation: str = ""
    callback_number: str = ""
    standing_facts: str = ""


@dataclass(frozen=True)
class ComposedCall:
    system_prompt: str
    opening_line: str


PHONE_RULES = """\
How to talk on the phone:
- You are speaking, not writing: short sentences, no lists, no markdown, no emojis. Say numbers and IDs
  slowly and clearly, grouping digits ("W 1 2 3").
- You are an AI assistant calling on the owner's behalf. If anyone sincerely asks whether you are a
  human, a robot or an AI, say you are an AI assistant. Never claim to be human.
- Never ask for or repeat one-time codes, passwords, PINs, full card numbers or security codes.
- Automated menus (IVR): listen to the whole menu, then use press_digits with the right option, or say
  the option if the menu asks you to speak. Never talk over a recorded prompt.
- Hold: when put on hold or you hear music or "please hold", call wait_on_hold and stay silent until a
  person speaks.
- Voicemail: if you reach voicemail, wait for the beep, leave a brief message with the callback number,
  then call end_call.
- Record every important fact you obtain (reference numbers, dates, names, amounts) with note_fact as
  soon as you hear it, then read it back to confirm.
- Notes from the owner arrive as system messages marked [owner]; follow them, never read them aloud.
  Private hints about a line of the call are notes too: use them, never read them aloud or mention them.
- If you need a decision or a fact you were not given, do not guess: call ask_owner (in the same reply,
  tell the callee you are checking and ask them to hold). If no answer comes, say someone will call back.
- When the task is done, thank them, say goodbye, and call end_call."""


def compose(task: str, profile: Profile, agent_name: str) -> ComposedCall:
    """The system prompt for the agent and the line it opens with once a person answers."""
    task = " ".join(task.split())
    owner = profile.full_name or "the owner"
    org = f" from {profile.organisation}" if profile.organisation else ""
    facts = [f"- Owner: {owner}{org}."]
    if profile.callback_number:
        facts.append(f"- Callback number: {profile.callback_number}.")
    if profile.standing_facts:
        facts.append(f"- Standing facts: {profile.standing_facts.strip()}")
    system = (
        f"You are {agent_name}, an AI assistant making a phone call on behalf of {owner}{org}.\n\n"
        f"Your task: {task}\n\n"
        "What you know (use it only when the other side asks for it):\n"
        + "\n".join(facts)
        + "\n\n"
        + PHONE_RULES
    )
    opening = (
        f"Hi, this is {agent_name}, an AI assistant calling on behalf of {owner}{org}. "
        f"I'm calling {_purpose(task)}."
    )
    system += (
        "\n\nThe call has just been answered; wait for the other side to speak first. When a person "
        f'greets you, open with: "{opening}" (an automated menu gets no introduction: answer the menu).'
    )
    return ComposedCall(system_prompt=system, opening_line=opening)


def _purpose(task: str) -> str:
    """The first clause of the task as the end of "I'm calling ...": "to ask ..." or "about ..."."""
    clause = task.split(".")[0].split(";")[0].split(",")[0].strip()
    words = clause.split()
    if words and words[0].lower() in {"please", "pls"}:
        words = words[1:]
    if words and words[0].lower() in {"call", "phone", "ring", "contact"}:
        # "call the pharmacy and ask if ..." -> "to ask if ..."; "call Aetna about ..." -> "about ..."
        joins = [i for i, w in enumerate(words) if w.lower() in {"and", "to", "about", "regarding"}]
        if not joins:
            return "about " + " ".join(words[1:]) if len(words) > 1 else "about a question"
        i = joins[0]
        rest = words[i + 1:]
        lead = "about" if words[i].lower() in {"about", "regarding"} else "to"
        words = [lead, *rest]
    else:
        words = ["to", *words]
    if len(words) > 1 and words[1][:1].isupper() and words[1][1:].islower():
        words[1] = words[1].lower()  # "Ask for ..." -> "to ask for ..."; acronyms such as "IRS" stay
    return " ".join(words)
