"""Microbenchmark: the call server's CPU per audio frame sent to Deepgram (``DeepgramSttStream``).

``--calls`` live streams (the real deepgram-sdk socket, our sender) push speech-like frames round-robin,
as 50 calls do 50 times a second each; the listen server is a websockets server in a child process that
reads and drops everything, so ``time.process_time`` here is the client's cost alone (push, wake-up,
SDK/websockets send, the socket write). Also times parsing the Deepgram emulator's messages (one
scripted turn's worth) into our events.

    PYTHONPATH=$PWD flock -s /tmp/bench.lock .venv/bin/python bench/stt_frame.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from typing import Any

import uvloop


def _discard_server(port: Any) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for message in ws:
            if isinstance(message, str) and "CloseStream" in message:
                return  # as Deepgram does: flush (nothing here) and close

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port.value = server.sockets[0].getsockname()[1]
            await asyncio.Future()

    uvloop.run(main())


async def _send_cost(calls: int, rounds: int) -> float:
    from callserver.stt.deepgram import DeepgramSTT

    port = multiprocessing.Value("i", 0)
    child = multiprocessing.Process(target=_discard_server, args=(port,), daemon=True)
    child.start()
    try:
        while not port.value:  # noqa: ASYNC110 - a value set by the child process
            await asyncio.sleep(0.01)
        stt = DeepgramSTT(api_key="k", base_url=f"http://127.0.0.1:{port.value}")
        streams = [stt.stream() for _ in range(calls)]
        runners = [asyncio.create_task(s.run()) for s in streams]
        while any(s.connections == 0 for s in streams):  # noqa: ASYNC110 - counters of the code under test
            await asyncio.sleep(0.01)
        frame = bytes(range(0, 256, 2)) + bytes(32)  # 160 bytes with sound: sent at once, every frame
        best = float("inf")
        for _ in range(5):
            cpu = time.process_time()
            for _ in range(rounds):
                for s in streams:
                    s.push(frame)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            best = min(best, (time.process_time() - cpu) / (rounds * calls) * 1e6)
            await asyncio.sleep(0.05)
        for s in streams:
            s.close()
        await asyncio.wait_for(asyncio.gather(*runners, return_exceptions=True), 5)
        return best
    finally:
        child.kill()


async def _turn_messages() -> list[str]:
    """What the Deepgram emulator sends for one spoken turn and the close (Results, SpeechStarted, ...)."""
    from sim.codec import encode_speech
    from sim.deepgram_stt import ListenOptions, ListenSession

    session = ListenSession(request_id="bench", options=ListenOptions.from_query({
        "encoding": "mulaw", "sample_rate": "8000", "channels": "1", "interim_results": "true",
        "endpointing": "300", "utterance_end_ms": "1000", "vad_events": "true", "smart_format": "true",
    }))
    speech = encode_speech("Hi, I would like to book a cleaning for next Tuesday at ten.")
    session.audio(speech + b"\xff" * 16000)
    session.close_stream()
    return list(session.sent_json)


def _parsers() -> dict[str, Any]:
    """Message text -> our events: through the SDK's typed parse, and (if present) our own."""
    from deepgram.core.unchecked_base_model import construct_type
    from deepgram.listen.v1.socket_client import V1SocketClientResponse

    from callserver.stt.deepgram import DeepgramSTT

    stream = DeepgramSTT(api_key="k", base_url="http://127.0.0.1:1").stream()
    on_typed = getattr(stream, "_on_typed", None)
    if on_typed is None:  # before: _receive's dispatch, inline
        def on_typed(message: Any) -> None:
            if getattr(message, "type", None) == "Results":
                stream._on_results(message)

    def typed(text: str) -> None:
        on_typed(construct_type(type_=V1SocketClientResponse, object_=json.loads(text)))
        stream._events = asyncio.Queue()

    parsers = {"SDK construct_type": typed}
    if hasattr(stream, "_on_text"):
        def raw(text: str) -> None:
            stream._on_text(text)
            stream._events = asyncio.Queue()
        parsers["json.loads"] = raw
    return parsers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    print(f"send: {uvloop.run(_send_cost(args.calls, args.rounds)):.2f} us CPU per frame "
          f"({args.calls} streams, best of 5 x {args.rounds} rounds)")
    texts = uvloop.run(_turn_messages())
    for name, fn in _parsers().items():
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(20):
                for text in texts:
                    fn(text)
            best = min(best, (time.perf_counter() - t) / (20 * len(texts)) * 1e6)
        print(f"receive ({name}): {best:.2f} us per message ({len(texts)} messages of one turn)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
