"""One in-process cache with a time to live, for what is costly to fetch and may change
(secret values, signing keys): kept `ttl` seconds, then fetched again, so a rotation is
picked up. Loading happens outside the lock; a load that raises caches nothing."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

K = TypeVar("K", bound="Hashable")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values by key, each for `ttl` seconds of `clock` (monotonic) time."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value for `key` while fresh, else `load()`'s (kept from now on)."""
        now = self._clock()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = load()
        with self._lock:
            self._entries[key] = (now + self._ttl, value)
        return value
