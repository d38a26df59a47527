"""How long a process woken by a socket waits when the sender keeps computing: equal priority vs a gap.

Two processes ping-pong one byte over a socketpair; after each reply the replier computes for 2 ms more,
as an emulator (or any other program on the machine) does after writing to the call server. The round
trip shows whether the woken side ran at once (a few tens of microseconds plus a wake-up) or only once
the replier stopped (~2 ms): on the 2-vCPU benchmark VM the kernel places the woken process on the
replier's vCPU and lets the replier finish unless it runs at least ~5 nice levels below. The call server
asks for nice -5 at start-up (``CALLSERVER_NICE``, dialer/runtime.raise_priority) for this reason.

    .venv/bin/python bench/wakeup.py
"""

from __future__ import annotations

import os
import socket
import statistics
import time

BUSY_AFTER_REPLY_S = 0.002


def round_trips(replier_nice: int, gap_s: float, n: int = 30) -> list[float]:
    """Round trips (us) with the replier at ``replier_nice`` levels below this process."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the replier
        ours.close()
        os.nice(replier_nice)
        while data := theirs.recv(16):
            theirs.send(data)
            until = time.perf_counter() + BUSY_AFTER_REPLY_S
            while time.perf_counter() < until:
                pass
        os._exit(0)
    theirs.close()
    out: list[float] = []
    try:
        for _ in range(n):
            time.sleep(gap_s)
            start = time.perf_counter()
            ours.send(b"x")
            ours.recv(16)
            out.append((time.perf_counter() - start) * 1e6)
    finally:
        ours.close()
        os.waitpid(pid, 0)
    return out


def main() -> None:
    print(f"replier computes {BUSY_AFTER_REPLY_S * 1000:.0f} ms after each reply; {os.cpu_count()} CPUs")
    for nice in (0, 2, 5, 10):
        for gap_s in (0.02, 0.25):
            rtt = sorted(round_trips(nice, gap_s))
            print(f"replier nice +{nice:<2}, {gap_s * 1000:3.0f} ms between pings: round trip "
                  f"p50 {statistics.median(rtt):7.1f} us, p90 {rtt[int(len(rtt) * 0.9)]:7.1f} us")


if __name__ == "__main__":
    main()
