"""Keypad tones in what every line of a ticker round played, detected in one pass after the round.

Each line's ``DtmfDetector`` keeps its own stream state (samples pending between frames, the tone being
held); only the blocks its frame completed are gathered here, decoded and classified once for the whole
round (``sim.audio.classify_mulaw_streams``), so the fixed cost of the array operations is paid per
round, not per line and frame. Digits are logged with the end of the frame that completed them, as a per-frame
check logs them, before the ticker yields: nothing else runs in between.
"""

from __future__ import annotations

import weakref

from sim.audio import DtmfDetector, classify_mulaw_streams
from sim.twilio.calllog import CallLog
from sim.twilio.ticker import Ticker


class ToneBatch:
    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._owners: list[tuple[DtmfDetector, CallLog, float, str]] = []

    def add(self, detector: DtmfDetector, blocks: bytes, log: CallLog, end_ms: float,
            source: str) -> None:
        """Blocks ``detector.take_bytes`` returned for a frame ending at ``end_ms``; digits go to ``log``
        labelled ``source``."""
        self._blocks.append(blocks)
        self._owners.append((detector, log, end_ms, source))

    def flush(self) -> None:
        """Classify everything added since the last flush; feed each detector its keys, log its digits."""
        if not self._blocks:
            return
        blocks, owners = self._blocks, self._owners
        self._blocks, self._owners = [], []
        for keys, (detector, log, end_ms, source) in zip(classify_mulaw_streams(blocks), owners, strict=True):
            for digit in detector.feed_keys(keys):
                log.digits.append((end_ms, digit, source))


_BATCHES: weakref.WeakKeyDictionary[Ticker, ToneBatch] = weakref.WeakKeyDictionary()


def tone_batch_for(ticker: Ticker) -> ToneBatch:
    batch = _BATCHES.get(ticker)
    if batch is None:
        batch = _BATCHES[ticker] = ToneBatch()
        ticker.round_end.append(batch.flush)
    return batch
