from __future__ import annotations

from shared.prompt import Profile, compose


def test_prompt_carries_task_profile_rules_and_opening() -> None:
    profile = Profile(full_name="Sam Lee", organisation="Lee Physio", callback_number="+12125550177",
                      standing_facts="NPI 1234567890")
    composed = compose("get prior auth for John Doe, knee surgery, member ID W123", profile, "Alex")
    assert composed.opening_line == (
        "Hi, this is Alex, an AI assistant calling on behalf of Sam Lee from Lee Physio. "
        "I'm calling to get prior auth for John Doe."
    )
    system = composed.system_prompt
    for expected in ("member ID W123", "+12125550177", "NPI 1234567890", "Never claim to be human",
                     composed.opening_line, "press_digits", "wait_on_hold", "note_fact", "end_call"):
        assert expected in system, expected


def test_opening_reads_naturally() -> None:
    def opening(task: str) -> str:
        return compose(task, Profile(full_name="Sam Lee"), "Alex").opening_line.split(". ", 1)[1]

    refill = opening("Call the pharmacy and ask if my refill is ready")
    assert refill == "I'm calling to ask if my refill is ready."
    assert opening("call Aetna about claim 88412") == "I'm calling about claim 88412."
    assert opening("call my landlord") == "I'm calling about my landlord."
    assert opening("book a table for four at 7pm") == "I'm calling to book a table for four at 7pm."
