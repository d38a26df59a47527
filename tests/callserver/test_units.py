"""Unit tests: phrase cutting, turn-taking decisions, heard-text mapping, history rewrite, tool schemas."""

from __future__ import annotations

from callserver.history import INTERRUPTED, NOTHING_HEARD, History, ToolCallRecord
from callserver.phrases import PhraseSplitter, split_text
from callserver.playback import Segment, heard_prefix
from callserver.stt.base import SpeechStarted, Transcript, UtteranceEnd
from callserver.tools import default_registry, to_anthropic, to_openai
from callserver.turns import Backchannel, BargeIn, EndOfTurn, TurnTaker


def _stream(text: str, size: int = 3) -> list[str]:
    splitter = PhraseSplitter()
    out: list[str] = []
    for i in range(0, len(text), size):
        out += splitter.push(text[i:i + size])
    rest = splitter.flush()
    return [*out, rest] if rest else out


def test_first_phrase_at_first_clause_then_sentences() -> None:
    assert _stream("Hi, this is Alex from Dr. Smith's office, calling about 3.5 hours. Bye now!") == [
        "Hi,", "this is Alex from Dr. Smith's office, calling about 3.5 hours.", "Bye now!"]


def test_numbers_ids_and_initials_are_not_cut() -> None:
    assert split_text("It costs 1,000.50 dollars, ref A.B.12. Ask J. Doe at example.com now.") == [
        "It costs 1,000.50 dollars,", "ref A.B.12.", "Ask J. Doe at example.com now."]


def _pushes(tokens: list[str]) -> list[list[str]]:
    """What each pushed token released (a phrase shows up at the token that completed it)."""
    splitter = PhraseSplitter()
    return [splitter.push(token) for token in tokens]


def test_first_phrase_is_cut_at_a_token_ending_with_unambiguous_punctuation() -> None:
    assert _pushes(["Okay", ",", " got", " it", "."]) == [[], ["Okay,"], [], [], []]
    assert _pushes(["Sure", "."])[1] == ["Sure."]
    assert _pushes(["Really", "?", "!", " Yes", ".", " Go"]) == [[], ["Really?"], [], [], [], ["Yes."]]
    assert _pushes(["Note", ":"])[1] == ["Note:"]


def test_ambiguous_punctuation_at_a_token_end_waits_for_the_next_character() -> None:
    assert _pushes(["It", " is", " 1", ",", "000"]) == [[]] * 5
    assert _pushes(["At", " 10", ":", "30", " ok"]) == [[]] * 5
    assert _pushes(["See", " https", ":", "//", "x"]) == [[]] * 5
    assert _pushes(["Ask", " Dr", ".", " Smith"]) == [[]] * 4
    assert _pushes(["Ask", " J", ".", " Doe"]) == [[]] * 4
    assert _pushes(["See", " e", ".", "g", ".", " this"]) == [[]] * 6
    # After the first phrase nothing is cut early: "example." may go on with "com".
    assert _pushes(["Hi", ",", " see", " example", ".", "com", " now", ".", " Bye"]) == [
        [], ["Hi,"], [], [], [], [], [], [], ["see example.com now."]]


def test_turns_backchannel_does_not_interrupt_but_speech_does() -> None:
    turns = TurnTaker()
    assert turns.feed(SpeechStarted(), agent_speaking=True) == []
    assert turns.feed(Transcript("uh-huh", False), agent_speaking=True) == []
    assert turns.feed(Transcript("Uh-huh.", True, True), agent_speaking=True) == [Backchannel("Uh-huh.")]
    assert turns.feed(Transcript("wait", False), agent_speaking=True) == [BargeIn("wait")]
    assert turns.feed(Transcript("wait a second", False), agent_speaking=True) == []  # reported once
    assert turns.feed(Transcript("Wait a second.", True), agent_speaking=True) == []
    assert turns.feed(UtteranceEnd(), agent_speaking=False) == [EndOfTurn("Wait a second.")]
    assert turns.feed(Transcript("okay", True, True), agent_speaking=False) == [EndOfTurn("okay")]
    assert turns.feed(Transcript("yeah sure thing", False), agent_speaking=True) == [
        BargeIn("yeah sure thing")]


def test_heard_words_are_whole_and_rounded_down() -> None:
    assert heard_prefix("Hello there, my friend", 0.6) == "Hello there,"
    assert heard_prefix("Hello there", 0.2) == ""
    seg = Segment("one two three four", start=1000, received=800, done=True)
    assert seg.heard(1000) == "" and seg.heard(1400) == "one two" and seg.heard(1800) == "one two three four"


def test_history_interrupt_rewrites_and_answers_tool_calls() -> None:
    history = History("sys")
    history.add_user("Hello?")
    msg = history.add_assistant("Hi, I'm calling about your invoice", [ToolCallRecord("c1", "end_call")])
    history.interrupt(msg, "Hi, I'm")
    openai = history.to_openai()
    assert openai[2]["content"] == "Hi, I'm" + INTERRUPTED
    assert openai[3] == {"role": "tool", "tool_call_id": "c1", "content": "not done: the callee interrupted"}
    other = history.add_assistant("Sorry")
    history.interrupt(other, "")
    assert other.text == NOTHING_HEARD
    system, anthropic = history.to_anthropic()
    assert system == "sys" and [m["role"] for m in anthropic] == ["user", "assistant", "user", "assistant"]


def test_tools_are_defined_once_and_translated() -> None:
    defs = default_registry().defs
    assert [t["function"]["name"] for t in to_openai(defs)] == ["end_call", "transfer_call", "note_fact"]
    anthropic = to_anthropic(defs)
    assert anthropic[2]["input_schema"]["required"] == ["label", "value"]


def test_interrupting_one_of_two_identical_turns_rewrites_that_one() -> None:
    from callserver.history import History, Message

    history = History("system")
    first = Message("assistant", "Could you repeat that?")
    second = Message("assistant", "Could you repeat that?")
    history.add_user("hm")
    history.messages.append(first)
    history.add_user("what")
    history.messages.append(second)
    history.interrupt(second, "Could you")
    assert first.text == "Could you repeat that?" and not first.interrupted
    assert second.interrupted and second.text.startswith("Could you")
    assert history.messages.index(second) == 3


def test_notes_say_who_they_come_from() -> None:
    from callserver.history import NOTE_PREFIX, STATUS_PREFIX, History

    history = History("system")
    history.add_note("Ask for the fax number too.")
    history.add_note("[You are on hold.]", source="system")
    openai = [m["content"] for m in history.to_openai()[1:]]
    assert openai == [NOTE_PREFIX + "Ask for the fax number too.", STATUS_PREFIX + "[You are on hold.]"]
    anthropic = str(history.to_anthropic())
    assert STATUS_PREFIX + "[You are on hold.]" in anthropic and NOTE_PREFIX + "Ask for the fax" in anthropic
