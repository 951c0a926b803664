"""Time as an injected dependency (ARCHITECTURE rule 6).

``MonotonicClock`` is the drone's clock. ``ManualClock`` is advanced by hand in unit tests and
replays. Intervals are measured in integer nanoseconds from ``monotonic_ns``; wall-clock time
(``time.time``) is only used where a file format asks for it (tlog timestamps).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...

    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real monotonic clock."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def monotonic(self) -> float:
        return self.monotonic_ns() / 1e9


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it. Thread-safe."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = int(start_ns)
        self._lock = threading.Lock()

    def monotonic_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def monotonic(self) -> float:
        return self.monotonic_ns() / 1e9

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"expected a non-negative step, got {seconds}")
        with self._lock:
            self._now_ns += int(round(seconds * 1e9))

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
