"""sim.server: serving an emulator's app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import asyncio, sys
from sim.elevenlabs import ElevenLabsEmulator
from sim.server import serve

async def main() -> None:
    before = "anyio._backends._asyncio" in sys.modules
    async with serve(ElevenLabsEmulator().app):
        print(before, "anyio._backends._asyncio" in sys.modules)

asyncio.run(main())
"""


def test_serving_loads_anyio_backend_before_the_first_request() -> None:
    """Starlette's streaming responses need anyio's backend: ``serve`` loads it before it yields the URL,
    not in the first streamed request (checked in a fresh interpreter: in this one it is long loaded)."""
    out = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.split() == ["False", "True"]
