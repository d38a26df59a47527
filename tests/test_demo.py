"""`dialer demo` end to end: emulators, call server and a scripted callee, printed live (speeded up)."""

from __future__ import annotations

import io

from rich.console import Console

from dialer.demo import run_demo


async def test_demo_prints_transcript_tools_latency_and_summary() -> None:
    out = io.StringIO()
    call = await run_demo("prior_auth", "openai", speed=10, console=Console(file=out, width=140),
                          timeout_s=60)
    text = out.getvalue()
    assert call.status == "completed" and call.outcome == "achieved"
    assert any(f.get("value") == "PA-48213" for f in call.facts)
    assert "callee Thank you for calling Acme Health" in text and "agent  The member ID is" in text
    assert "tool/action on_hold" in text
    assert "per-call latency" in text and "first_audio_ms" in text
    assert "PA-48213" in text and "outcome:" in text


async def test_demo_with_anthropic_and_an_interruption() -> None:
    out = io.StringIO()
    call = await run_demo("interrupting_human", "anthropic", speed=8, console=Console(file=out, width=140),
                          timeout_s=60)
    text = out.getvalue()
    assert call.status == "completed"
    assert "cut off (barge-in)" in text
