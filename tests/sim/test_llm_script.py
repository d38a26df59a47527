"""Scripted brains: rules, once-per-conversation, templating, YAML, reply queues and summary answers."""

from __future__ import annotations

import json

import pytest

from sim.llm_script import (
    Conversation,
    Reply,
    ReplyQueue,
    Rule,
    ScriptedBrain,
    ToolCall,
    ToolSpec,
    Turn,
    load_brain,
    split_tokens,
)
from sim.llm_summary import SummaryConfig, summarise

TOOLS = [ToolSpec("note_fact", "Record a fact", {"type": "object"}), ToolSpec("end_call", "Hang up")]


def conv(*turns: Turn, system: str = "You call a clinic for Alex.", tools: list[ToolSpec] | None = None
         ) -> Conversation:
    return Conversation(system=system, messages=list(turns), tools=TOOLS if tools is None else tools)


def user(text: str) -> Turn:
    return Turn(role="user", text=text)


def said(text: str, *calls: ToolCall) -> Turn:
    return Turn(role="assistant", text=text, tool_calls=list(calls))


def test_split_tokens_gives_the_text_back_in_small_pieces() -> None:
    text = "Hello, I'm calling about appointment PA-48213 on 2024-03-05 — thanks!  Bye."
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert max(len(p) for p in pieces) <= 7
    assert len(pieces) > len(text.split())


def test_rule_groups_are_templated_into_text_and_tool_arguments() -> None:
    brain = ScriptedBrain([
        Rule(user=r"reference (?:number )?is (?P<ref>[A-Z]{2}-\d+)", say="Got it, {ref}.",
             calls=[ToolCall("note_fact", {"label": "reference", "value": "{ref}", "raw": "{0}"})]),
    ])
    reply = brain(conv(said("Hi."), user("Sure, the reference number is PA-48213, okay?")))
    assert isinstance(reply, Reply)
    assert reply.text == "Got it, PA-48213."
    assert reply.tool_calls[0].arguments == {"label": "reference", "value": "PA-48213",
                                             "raw": "reference number is PA-48213"}


def test_user_rules_answer_only_new_input_and_after_tool_rules_follow_the_result() -> None:
    brain = ScriptedBrain([
        Rule(user=r"reference is (\w+-\d+)", calls=[ToolCall("note_fact", {"value": "{1}"})]),
        Rule(after_tool="note_fact", tool_result=r"saved (\w+)", say="Thanks, I noted {1}."),
    ], default=None)
    call = ToolCall("note_fact", {"value": "PA-1"}, id="call_1")
    history = [said("Hello."), user("The reference is PA-1.")]
    assert brain(conv(*history)).tool_calls[0].arguments == {"value": "PA-1"}  # type: ignore[union-attr]
    after = [*history, said("", call), Turn(role="tool", text="saved ok", tool_call_id="call_1")]
    assert brain(conv(*after)).text == "Thanks, I noted ok."  # type: ignore[union-attr]


def test_once_reads_the_history_so_concurrent_calls_do_not_interfere() -> None:
    greet = Rule(first_turn=True, say="Hello, this is Sam calling for {name}.", once=True)
    brain = ScriptedBrain([greet, Rule(say="Could you repeat that?", priority=-1)])
    assert brain(conv()).text.startswith("Hello, this is Sam")  # type: ignore[union-attr]
    # Another conversation that already heard the greeting does not get it again ...
    heard = conv(said("Hello, this is Sam calling for Alex."), user("Hi"))
    assert brain(heard).text == "Could you repeat that?"  # type: ignore[union-attr]
    # ... while a fresh one still does: no state lives in the brain.
    assert brain(conv(user("Hello?"))).text.startswith("Hello, this is Sam")  # type: ignore[union-attr]


def test_once_counts_a_reply_cut_short_by_barge_in() -> None:
    rule = Rule(user="hours", say="We are open from nine to five on weekdays.", once=True)
    cut_after_three = conv(user("hours?"), said("We are open—"), user("and the hours again?"))
    cut_after_one = conv(user("hours?"), said("We—"), user("and the hours again?"))
    assert rule.match(cut_after_three) is None
    assert rule.match(cut_after_one) is not None


def test_once_for_tool_rules_and_priority() -> None:
    bye = Rule(user="bye", say="Goodbye!", calls=[ToolCall("end_call")], once=True, priority=5)
    brain = ScriptedBrain([Rule(user=".", say="Mhm."), bye])
    assert brain(conv(user("ok bye"))).tool_calls[0].name == "end_call"  # type: ignore[union-attr]
    ended = conv(user("ok bye"), said("", ToolCall("end_call", id="x")), user("bye!"))
    assert brain(ended).text == "Mhm."  # type: ignore[union-attr]


def test_conditions_on_system_prompt_and_tool_availability() -> None:
    rule = Rule(system=r"call (?:a|the) (\w+)", tool_available="press_digits", say="IVR at the {1}")
    assert rule.match(conv(user("hi"))) is None
    with_tool = conv(user("hi"), tools=[*TOOLS, ToolSpec("press_digits")])
    assert rule.produce(rule.match(with_tool) or {}).text == "IVR at the clinic"


def test_no_match_without_default_raises() -> None:
    with pytest.raises(LookupError):
        ScriptedBrain([Rule(user="never")], default=None)(conv(user("hi")))


def test_reply_queue_returns_replies_in_order_then_default() -> None:
    queue = ReplyQueue(["one", Reply(tool_calls=[ToolCall("end_call")])])
    assert queue(conv()).text == "one"
    assert queue(conv()).tool_calls[0].name == "end_call"
    with pytest.raises(LookupError):
        queue(conv())
    queue.push("three")
    assert queue(conv()).text == "three"
    assert len(queue.seen) == 4


def test_load_brain_from_yaml() -> None:
    brain = load_brain("""
default: "Sorry?"
rules:
  - first_turn: true
    say: "Hi, I'm calling about an appointment."
    once: true
  - user: "reference is (?P<ref>\\\\S+?)\\\\.?$"
    say: "Thanks, {ref}."
    call: {name: note_fact, arguments: {value: "{ref}"}}
  - user: "bye"
    call: end_call
    priority: 3
""")
    assert brain(conv()).text == "Hi, I'm calling about an appointment."  # type: ignore[union-attr]
    reply = brain(conv(said("Hi, I'm calling about an appointment."), user("The reference is X-9.")))
    assert reply.text == "Thanks, X-9." and reply.tool_calls[0].arguments == {"value": "X-9"}  # type: ignore
    assert brain(conv(said("Hi."), user("bye"))).tool_calls[0].name == "end_call"  # type: ignore[union-attr]
    assert brain(conv(said("Hi."), user("what?"))).text == "Sorry?"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown rule keys"):
        load_brain([{"usr": "typo", "say": "x"}])


TRANSCRIPT = [
    said("Hi, I'm calling to move Alex's appointment."),
    user("Sure. I've moved it to Tuesday, March 5th at 3:30 pm. Your reference number is PA-48213."),
    user("There is a $25 rebooking fee. You will receive a confirmation email within 2 days."),
]


def test_summary_request_is_answered_as_json_from_the_conversation() -> None:
    request = conv(*TRANSCRIPT, user("Summarize the call as JSON."), system="You write call summaries.",
                   tools=[])
    reply = ScriptedBrain([Rule(say="not a summary")])(request)
    data = json.loads(reply.text)  # type: ignore[union-attr]
    assert data["outcome"] == "success"
    facts = {f["label"]: f["value"] for f in data["facts"]}
    assert facts["reference number"] == "PA-48213"
    assert facts["date"] == "Tuesday, March 5th"
    assert facts["time"] == "3:30 pm"
    assert facts["amount"] == "$25"
    assert data["next_steps"] == ["You will receive a confirmation email within 2 days."]
    assert "PA-48213" in data["summary"]


def test_summary_goes_to_the_offered_tool_with_configured_field_names() -> None:
    cfg = SummaryConfig(outcome="result", facts="found", label="name", value="val")
    request = conv(*TRANSCRIPT, tools=[ToolSpec("submit_summary", "", {"type": "object"})])
    reply = ScriptedBrain(summary=cfg)(request)
    call = reply.tool_calls[0]  # type: ignore[union-attr]
    assert call.name == "submit_summary"
    assert call.arguments["result"] == "success"
    assert {"name": "reference number", "val": "PA-48213"} in call.arguments["found"]


def test_ordinary_turns_are_not_mistaken_for_summary_requests() -> None:
    brain = ScriptedBrain([Rule(user="summary", say="I can't summarise that for you.")])
    assert brain(conv(user("Can I get a summary of charges?"))).text.startswith("I can't")  # type: ignore


def test_summary_outcomes_voicemail_and_failed() -> None:
    assert summarise("user: Please leave a message after the tone.")["outcome"] == "voicemail"
    failed = summarise("user: Unfortunately we have no record of that booking.")
    assert failed["outcome"] == "failed" and failed["facts"] == []
