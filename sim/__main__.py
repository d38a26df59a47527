"""Run every emulator on 127.0.0.1 and print the settings that point dialer at them.

    python -m sim [--speed 1] [--port 9100]        (or `dialer sim`)

`EmulatorStack` is the same set of emulators as an async context manager, for tests, the demo and the
benchmarks: Twilio (REST + phone network + Media Streams), Deepgram (STT + TTS), ElevenLabs, OpenAI,
Anthropic and Telegram, each served with `sim.server.serve` in the current event loop. Each emulator
module cites the documentation it follows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sim.anthropic import AnthropicEmulator, create_anthropic_app
from sim.deepgram import DeepgramEmulator
from sim.elevenlabs import ElevenLabsEmulator
from sim.llm_script import Brain, ScriptedBrain
from sim.openai import OpenAIEmulator, create_openai_app
from sim.scenarios import default_registry
from sim.server import serve
from sim.telegram import TelegramEmulator
from sim.twilio import PhoneNetwork
from sim.twilio import create_app as create_twilio_app

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sim-twilio-auth-token-0123456789"
FROM_NUMBER = "+12125550199"
OPENAI_KEY = "sk-sim-openai-key-000000000000"
ANTHROPIC_KEY = "sk-ant-sim-key-0000000000000"


@dataclass
class EmulatorStack:
    """Every outside service, emulated. Set latencies/brain before `start()` (or use `running`)."""

    speed: float = 1.0
    brain: Brain = field(default_factory=ScriptedBrain)
    llm_ttft_s: float = 0.25
    llm_tokens_per_s: float = 60.0
    with_telegram: bool = True
    network: PhoneNetwork = field(init=False)
    deepgram: DeepgramEmulator = field(init=False)
    elevenlabs: ElevenLabsEmulator = field(init=False)
    openai: OpenAIEmulator = field(init=False)
    anthropic: AnthropicEmulator = field(init=False)
    telegram: TelegramEmulator = field(init=False)
    urls: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.network = PhoneNetwork(speed=self.speed, accounts={ACCOUNT_SID: AUTH_TOKEN},
                                    scenarios=default_registry())
        self.deepgram = DeepgramEmulator()
        self.elevenlabs = ElevenLabsEmulator()
        timing = {"ttft_s": self.llm_ttft_s, "tokens_per_s": self.llm_tokens_per_s}
        self.openai = create_openai_app(self.brain, **timing)
        self.anthropic = create_anthropic_app(self.brain, **timing)
        self.telegram = TelegramEmulator()

    def apps(self) -> dict[str, Any]:
        apps: dict[str, Any] = {
            "twilio": create_twilio_app(self.network), "deepgram": self.deepgram.app,
            "elevenlabs": self.elevenlabs.app, "openai": self.openai.app, "anthropic": self.anthropic.app,
        }
        if self.with_telegram:
            apps["telegram"] = self.telegram.app
        return apps

    @contextlib.asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[EmulatorStack]:
        """Serve every emulator (consecutive ports from `port`, or free ones when 0)."""
        async with contextlib.AsyncExitStack() as stack:
            for i, (name, app) in enumerate(self.apps().items()):
                self.urls[name] = await stack.enter_async_context(serve(app, port=port + i if port else 0))
            self.network.warm_up()
            try:
                yield self
            finally:
                await self.network.aclose()

    def env(self) -> dict[str, str]:
        """Settings (env names) that point dialer at these emulators."""
        env = {
            "TWILIO_API_BASE_URL": self.urls["twilio"], "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "DEEPGRAM_BASE_URL": self.urls["deepgram"], "DEEPGRAM_API_KEY": self.deepgram.api_key,
            "ELEVENLABS_BASE_URL": self.urls["elevenlabs"], "ELEVENLABS_API_KEY": self.elevenlabs.api_key,
            "OPENAI_BASE_URL": self.urls["openai"] + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
            "ANTHROPIC_BASE_URL": self.urls["anthropic"], "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        }
        if "telegram" in self.urls:
            env["TELEGRAM_API_BASE_URL"] = self.urls["telegram"]
            env["TELEGRAM_BOT_TOKEN"] = self.telegram.token
        return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100, help="first port (0 = free ports)")
    parser.add_argument("--speed", type=float, default=1.0, help="phone network clock speed factor")
    parser.add_argument("--voice-url", default="", help="voice webhook of FROM_NUMBER for inbound calls")
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(args.port, args.speed, args.voice_url))


async def _serve_forever(port: int, speed: float, voice_url: str) -> None:
    stack = EmulatorStack(speed=speed)
    async with stack.running(port):
        if voice_url:
            stack.network.set_voice_url(FROM_NUMBER, voice_url)
        for name, url in stack.urls.items():
            print(f"{name:<11} {url}")
        print("\n# point dialer at the emulators (.env):")
        for key, value in stack.env().items():
            print(f"{key}={value}")
        print("\n# scenario numbers: " + ", ".join(sorted(stack.network.scenarios)))
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
