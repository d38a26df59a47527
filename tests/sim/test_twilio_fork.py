"""sim.twilio: `<Start><Stream>` listen-only forks (twilio.com/docs/voice/twiml/stream, unidirectional
Media Streams): both tracks tagged, the next verbs run meanwhile, a TwiML replacement does not stop the
fork, the call's end does; the server cannot talk into it."""

from __future__ import annotations

import base64

from sim.codec import SpeechDecoder
from sim.scenarios import Scenario
from sim.scenarios.steps import pause, say
from sim.twilio import PhoneNetwork
from tests.sim.test_twilio_media import AgentServer, Session, eventually, place, rig

__all__ = ["rig"]
TALKER = "+12125550198"


def fork_twiml(url: str, track: str = "both_tracks", then: str = '<Say>The stream has started.</Say>') -> str:
    return (f'<Response><Start><Stream url="{url}" track="{track}"><Parameter name="mode" value="listen"/>'
            f'</Stream></Start>{then}<Pause length="600"/></Response>')


def words(session: Session, track: str) -> str:
    decoder = SpeechDecoder()
    heard = []
    for message in session.events("media"):
        if message["media"]["track"] == track:
            heard += [w.word for w in decoder.feed(base64.b64decode(message["media"]["payload"]))]
    return " ".join(heard)


async def test_fork_carries_both_tracks_and_outlives_a_twiml_replacement(
        rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    net.attach(TALKER, Scenario("talker", [pause(1500), say("hello there"), pause(600_000)], ring_ms=100))
    sid = place(net, fork_twiml(server.url), to=TALKER, speed=5.0)
    await eventually(lambda: server.sessions and "hello there" in words(server.sessions[0], "inbound"))
    fork = server.sessions[0]
    start = fork.events("start")[0]["start"]
    assert start["tracks"] == ["inbound", "outbound"] and start["customParameters"] == {"mode": "listen"}
    # The next verb ran while the fork streamed: what the party heard is the outbound track.
    await eventually(lambda: "started" in words(fork, "outbound"))
    assert "the stream has started" in words(fork, "outbound").lower()
    chunks = {t: [int(m["media"]["chunk"]) for m in fork.events("media") if m["media"]["track"] == t]
              for t in ("inbound", "outbound")}
    assert chunks["inbound"][:3] == [1, 2, 3] and chunks["outbound"][:3] == [1, 2, 3]
    # Nothing may be sent back on a unidirectional stream.
    await fork.media(b"\xff" * 160)
    log = net.calls[sid].log
    await eventually(lambda: 31924 in log.error_codes())
    # Replacing the TwiML does not stop the fork; the call's end does.
    net.calls[sid].replace_with.put_nowait(("twiml", '<Response><Pause length="600"/></Response>'))
    seen = len(fork.events("media"))
    await eventually(lambda: len(fork.events("media")) > seen + 20)
    assert not fork.events("stop")
    net.calls[sid].hang_up("done")
    await net.wait_for_end(sid)
    await eventually(lambda: fork.events("stop"))
    assert [s["end_reason"] for s in log.streams] == ["call ended"] and log.streams[0]["unidirectional"]
    assert not fork.events("dtmf")


async def test_inbound_only_fork_and_bad_track(rig: tuple[PhoneNetwork, AgentServer]) -> None:
    net, server = rig
    sid = place(net, fork_twiml(server.url, track="inbound_track"), speed=5.0)
    await eventually(lambda: server.sessions and len(server.sessions[0].events("media")) >= 10)
    fork = server.sessions[0]
    assert fork.events("start")[0]["start"]["tracks"] == ["inbound"]
    assert {m["media"]["track"] for m in fork.events("media")} == {"inbound"}
    net.calls[sid].hang_up("done")
    await net.wait_for_end(sid)
    # An unknown track value is a verb Twilio cannot run: skipped with a 12200 warning, the call goes on.
    sid = place(net, fork_twiml(server.url, track="sideways", then=""), speed=5.0)
    await eventually(lambda: any("12200" in n for n in net.calls[sid].log.notices))
    assert len(server.sessions) == 1 and net.calls[sid].status == "in-progress"
    net.calls[sid].hang_up("done")
    await net.wait_for_end(sid)
