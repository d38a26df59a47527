"""Units of the hard-call modules: DTMF synthesis (checked by an independent spectrum and by sim's receiver),
IVR / hold / voicemail language, the recording-vs-person classifier, limits, dead air and beep detection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from callserver import audio, dtmf, voicemail
from callserver.hold import Hold, is_hold_phrase, sounds_human
from callserver.ivr import IvrGate, is_menu
from callserver.limits import Limit, SilenceMeter
from callserver.stt.base import Transcript, UtteranceEnd
from sim.audio import DtmfDetector, beep, hold_music


def peaks(mulaw: bytes, n: int = 2) -> list[float]:
    pcm = audio.decode(mulaw).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / audio.SAMPLE_RATE)
    found: list[float] = []
    for i in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[i] - f) > 40 for f in found):
            found.append(float(freqs[i]))
        if len(found) == n:
            break
    return sorted(found)


@pytest.mark.parametrize("key", list("0123456789*#ABCD"))
def test_each_key_is_its_standard_frequency_pair(key: str) -> None:
    low, high = dtmf.PAIRS[key]
    got = peaks(dtmf.tone(key, 90))
    assert abs(got[0] - low) < 15 and abs(got[1] - high) < 15


def test_tone_timing_level_and_an_independent_receiver() -> None:
    keys = "123456789#"
    sent = dtmf.tones(keys)
    assert len(sent) == len(keys) * (dtmf.TONE_MS + dtmf.GAP_MS) * 8  # 90 ms tone + 90 ms gap each
    assert 70 <= dtmf.TONE_MS <= 100 and dtmf.GAP_MS >= 40
    pcm = audio.decode(dtmf.tone("5")).astype(np.float64)
    assert 4000 < np.abs(pcm).max() < 32000  # loud enough for any receiver, no mu-law clipping
    receiver = DtmfDetector()
    heard = [d for i in range(0, len(sent), 320) for d in receiver.feed(sent[i:i + 320])]
    assert "".join(heard) == keys
    assert len(dtmf.tones("1w2")) == (2 * (dtmf.TONE_MS + dtmf.GAP_MS) + dtmf.PAUSE_MS) * 8


def test_digit_strings_are_normalised_or_refused() -> None:
    assert dtmf.normalise("W-123 456 789#") == "W123456789#".replace("W", "w")
    assert dtmf.normalise("1a") == "1A"
    with pytest.raises(ValueError):
        dtmf.normalise("press one")
    with pytest.raises(ValueError):
        dtmf.normalise("")


def test_mulaw_round_trip_is_close() -> None:
    pcm = (np.sin(np.arange(800) / 5) * 20000).astype(np.int16)
    back = audio.decode(audio.encode(pcm)).astype(np.int32)
    assert np.max(np.abs(back - pcm) / (np.abs(pcm) + 64)) < 0.07


def test_menu_language() -> None:
    for text in ("For eligibility, press 1. For prior authorisation, press 2.", "Para español, oprima nueve.",
                 "Please say or enter your account number.",
                 "Enter your member ID followed by the pound key.",
                 "To return to the main menu, press star."):
        assert is_menu(text), text
    for text in ("Hi, this is Dana, how can I help?", "Sure, that works for me.", "I pressed it already"):
        assert not is_menu(text), text


def test_ivr_gate_strips_speech_final_from_the_first_menu_words() -> None:
    gate = IvrGate()
    part = Transcript("For eligibility, press 1.", is_final=True, speech_final=True)
    assert gate.filter(part, "") == Transcript("For eligibility, press 1.", is_final=True, speech_final=False)
    assert gate.active and gate.filter(UtteranceEnd(), "x") == UtteranceEnd()
    gate.person_spoke()
    plain = Transcript("Hello?", is_final=True, speech_final=True)
    assert gate.filter(plain, "") is plain


def test_hold_language_and_people() -> None:
    assert is_hold_phrase("Please hold while I transfer you.")
    assert is_hold_phrase("All of our representatives are currently assisting other callers.")
    assert is_hold_phrase("Your estimated wait time is 10 minutes.")
    assert not is_hold_phrase("Can I have your member ID?")
    for text in ("Hi, this is Dana, how can I help?", "Hello?", "Thanks for holding, I'm Mark.",
                 "Are you still there?", "Claims, Rob speaking."):
        assert sounds_human(text), text
    for text in ("Your call is important to us.",
                 "Hello and thank you for calling Acme Health, where care comes first.",
                 "A representative will be with you shortly."):
        assert not sounds_human(text), text


def test_hold_classifier_recordings_repeats_and_the_person() -> None:
    hold = Hold(0, "")
    loop = "Thank you for holding. Your call is important to us. A representative will be with you shortly."
    assert [hold.classify(loop) for _ in range(3)] == ["recording"] * 3
    assert hold.classify("thank you for holding your call is important to us a representative will be with "
                         "you shortly") == "recording"  # STT wobble: same words
    assert hold.classify("Did you know you can manage claims online?") == "recording"  # unknown: stay silent
    assert hold.classify("Did you know you can manage claims online?") == "recording"
    assert hold.classify("Hi, this is Dana, how can I help?") == "person"
    assert hold.recordings_heard == 6
    assert hold.classify("La") == "recording"  # a lone word out of the music
    assert hold.classify("Thanks for waiting. So, about your claim.") == "person"  # when in doubt: a person
    assert not is_hold_phrase("Hold on, who's this?")  # people say it; it is no queue


def test_limits_warn_then_end_once() -> None:
    call = Limit.with_goodbye("call", 30 * 60_000)
    assert call.end_at_ms == 30 * 60_000 - 20_000 and call.warn_at_ms == call.end_at_ms - 60_000
    assert call.check(call.warn_at_ms - 1) is None
    assert call.check(call.warn_at_ms) == "warn" and call.check(call.warn_at_ms + 1) is None
    assert call.check(call.end_at_ms) == "end" and call.check(call.end_at_ms + 5000) is None
    hold = Limit("hold", 60_000)
    assert hold.end_at_ms == 60_000 and hold.warn_at_ms == 45_000
    skipped = Limit("hold", 60_000)
    assert skipped.check(70_000) == "end"  # a late check still ends (no warning owed after the end)


def test_dead_air_is_reported_once_per_stretch_music_is_not() -> None:
    meter = SilenceMeter(report_ms=1000)
    quiet = audio.silence(20)
    reports = [meter.feed(quiet) for _ in range(100)]
    assert [r for r in reports if r] == [1000.0]
    music = hold_music(2000)
    assert all(meter.feed(music[i:i + 160]) is None for i in range(0, len(music), 160))
    assert meter.run_ms == 0 or meter.run_ms < 200  # music's own decays are short


def test_beep_detection_and_voicemail_readiness() -> None:
    beeps = voicemail.BeepDetector()
    clock = 0.0
    stream = hold_music(1000) + beep(400) + audio.silence(200)
    for i in range(0, len(stream), 160):
        clock += 20
        beeps.feed(stream[i:i + 160], clock)
    assert beeps.last_end_ms is not None and 1400 <= beeps.last_end_ms <= 1460
    drop = voicemail.VoicemailDrop()
    drop.arm(clock, "greeting")
    assert drop.ready(beeps, clock)  # the beep just ended: speak now
    late = voicemail.VoicemailDrop()
    late.arm(clock + 10_000, "greeting")
    assert not late.ready(beeps, clock + 10_000)
    assert late.ready(beeps, clock + 10_000 + voicemail.NO_BEEP_WAIT_MS)  # no beep: speak after quiet


def test_voicemail_greetings_and_message() -> None:
    assert voicemail.is_greeting("I can't take your call right now. Please leave a message after the tone.")
    assert voicemail.is_greeting("You have reached the voicemail of Sam Lee.")
    assert not voicemail.is_greeting("Hi, this is Dana, how can I help?")

    class Info:
        options: dict[str, str] = {}
        task = "Ask Sam to call back about Tuesday's appointment."
        owner_number = "+12125550177"

    class Settings:
        voicemail_message = ""
        agent_name = "Alex"

    text = voicemail.message_for(Info(), Settings())
    assert "Alex" in text and "Tuesday's appointment" in text and "1 2 1 2 5 5 5 0 1 7 7" in text
    Settings.voicemail_message = "Please call Sam back."
    assert voicemail.message_for(Info(), Settings()) == "Please call Sam back."
    assert voicemail.summary_of([("callee", "Leave a message"), ("agent", "Hi Sam")]) == (
        "Voicemail left: \u201cHi Sam\u201d")


def test_batched_beep_check_arms_as_the_per_frame_detector_would(settings_factory: Any) -> None:
    """HardCalls checks idle audio 25 frames at a time; arming flushes, so the beep before it still counts."""
    from tests.callserver.test_hardcalls import make

    hard, session = make(settings_factory)
    reference = voicemail.BeepDetector()
    stream = hold_music(1000) + beep(400) + audio.silence(60)  # 73 frames: the last 23 not checked yet
    clock = 0.0
    for i in range(0, len(stream), 160):
        clock += 20
        hard.on_media(stream[i:i + 160])
        reference.feed(stream[i:i + 160], clock)
    assert hard.beeps.last_end_ms is None  # still waiting in the batch
    assert hard.on_turn("Please leave a message after the tone.") is True
    assert (hard.beeps.last_end_ms, hard.beeps.run_ms) == (reference.last_end_ms, reference.run_ms)
    assert reference.last_end_ms is not None
    hard.on_media(audio.silence(20))  # armed: every frame is checked at once, and the beep is over
    assert hard.voicemail.state == "leaving" and session.spawned


def test_dead_air_reported_from_batches_like_frame_by_frame() -> None:
    one, many = SilenceMeter(report_ms=1000), SilenceMeter(report_ms=1000)
    quiet = audio.silence(20)
    singles = [one.feed(quiet) for _ in range(75)]
    batches = [many.feed_levels([0.0] * 25, [20.0] * 25) for _ in range(3)]
    assert [r for r in singles if r] == [r for r in batches if r] == [1000.0]
    assert many.feed_levels([0.0, 500.0], [20.0, 20.0]) is None and many.run_ms == 0


def _reference_leave_frame(frames: list[bytes], arm_at: int, hold: range) -> int | None:
    """The drop as it was judged before: every frame fed to the beep detector as it came (idle or armed,
    not on hold); the index of the frame after which the message starts, or None."""
    beeps, drop, clock = voicemail.BeepDetector(), voicemail.VoicemailDrop(), 0.0
    for i, frame in enumerate(frames):
        if i == arm_at:
            drop.arm(clock, "amd")
        clock += len(frame) / audio.BYTES_PER_MS
        if i not in hold:
            beeps.feed(frame, clock)
            if drop.ready(beeps, clock):
                return i
    return None


def _lazy_leave_frame(settings_factory: Any, frames: list[bytes], arm_at: int, hold: range) -> int | None:
    from tests.callserver.test_hardcalls import make

    hard, _ = make(settings_factory)
    for i, frame in enumerate(frames):
        if i == arm_at:
            hard.on_amd("machine_start")
        if i == hold.start:
            hard.enter_hold("test", by="test")
        if i == hold.stop:
            hard.leave_hold("test")
        hard.on_media(frame)
        if hard.voicemail.state == "leaving":
            return i
    return None


@pytest.mark.parametrize("beep_ms", [100, 120, 140, 400, 5000])
def test_beeps_judged_only_once_armed_leave_the_message_when_judging_every_frame_would(
        settings_factory: Any, beep_ms: int) -> None:
    """Idle audio is judged only when the drop is armed, from the last few seconds kept: the message starts
    at the same frame as with every frame judged as it came, for beeps ending around the 3 s that still count
    (and runs longer than what is kept, still going when the drop is armed), wherever the 25-frame batches
    fall (``phase``)."""
    for before_ms in (0, 100, 2980, 3000, 3020, 3040, 4000):
        for phase in range(0, 25, 2):
            lead = hold_music(4000 + 20 * phase, seed=3) + audio.silence(500)
            stream = lead + beep(beep_ms) + hold_music(before_ms, seed=4) + hold_music(2600, seed=5)
            frames = [stream[i:i + 160] for i in range(0, len(stream), 160)]
            for arm_at in {len(lead) // 160 + (beep_ms + before_ms) // 20, len(lead) // 160 + beep_ms // 40}:
                expected = _reference_leave_frame(frames, arm_at, range(0))
                assert _lazy_leave_frame(settings_factory, frames, arm_at, range(0)) == expected, (
                    before_ms, phase, arm_at)


def test_a_beep_across_a_hold_counts_as_before(settings_factory: Any) -> None:
    """Frames on hold are not judged: a tone before and after a hold is one run, both ways."""
    stream = hold_music(5000) + beep(100) + hold_music(6000) + beep(60) + hold_music(300) + audio.silence(900)
    frames = [stream[i:i + 160] for i in range(0, len(stream), 160)]
    hold = range(255, 255 + 300)  # 6 s of music on hold right after the first 100 ms of tone
    arm_at = 255 + 300 + 3 + 10
    expected = _reference_leave_frame(frames, arm_at, hold)
    assert expected is not None and expected - arm_at <= 2  # the 160 ms run counted: speak at once
    assert _lazy_leave_frame(settings_factory, frames, arm_at, hold) == expected
