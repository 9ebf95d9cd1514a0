"""Time, as a seam: the handler uses the system clock, the local runner a virtual one.

`now()` is wall-clock time in epoch seconds; it is what gates measure waits and timeouts
against, and what a virtual clock speeds up. Deadlines that protect a Lambda invocation
(reply before the function times out) are real time and use `time.monotonic` directly.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time that can also wait."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of this clock's time pass."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock that runs `speed` times faster than real time, from `start`.

    `advance()` jumps ahead instantly (for tests and for skipping idle stretches).
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        self._origin_real = time.monotonic()
        self._origin_virtual = time.time() if start is None else start
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            elapsed = time.monotonic() - self._origin_real
            return self._origin_virtual + elapsed * self._speed + self._offset

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self._speed)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


class JumpClock(VirtualClock):
    """A virtual clock whose sleeps take no real time: a hold's waits and a rehearsal's
    hours pass at once (benchmarks and tests of time that would otherwise be waited for)."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)
