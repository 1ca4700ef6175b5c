"""Client-side rate limiting: :class:`RateLimit`, shared by any number of models."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from ..errors import ConfigurationError

__all__ = ["RateLimit", "as_rate_limit"]


class RateLimit:
    """At most ``requests`` requests per ``per_seconds``, spaced evenly, client-side.

    One instance can be shared by several models (pass the same object as ``rate_limit=``),
    by concurrent runs and by different event loops and threads: the next free slot is taken
    under a lock, then the caller sleeps until it without holding anything.

    It keeps two schedules with the same spacing. A request takes a slot in the first before it
    waits for a connection (:meth:`acquire`), so that few requests hold a connection while they
    wait; it takes a slot in the second as it is written to its connection
    (:meth:`acquire_send`), so that the spacing holds as the server sees it even when a pool
    releases many waiting requests at once.
    """

    __slots__ = (
        "_clock",
        "_interval",
        "_lock",
        "_next",
        "_next_send",
        "per_seconds",
        "requests",
    )

    def __init__(self, requests: float, per_seconds: float = 60.0) -> None:
        if not requests > 0 or not per_seconds > 0:
            raise ConfigurationError(
                f"rate limit must be positive: got {requests!r} requests per {per_seconds!r} s; "
                "pass e.g. rate_limit=300 (per minute) or RateLimit(5, per_seconds=1)"
            )
        self.requests = requests
        self.per_seconds = per_seconds
        self._interval = per_seconds / requests
        self._lock = threading.Lock()
        self._next = 0.0
        self._next_send = 0.0
        self._clock: Callable[[], float] = time.monotonic

    def reserve(self) -> float:
        """Take the next slot; return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = self._next if self._next > now else now
            self._next = slot + self._interval
        return slot - now

    def reserve_send(self) -> float:
        """Take the next slot to write a request; return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = self._next_send if self._next_send > now else now
            self._next_send = slot + self._interval
        return slot - now

    async def acquire(self) -> None:
        """Wait for the next slot."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    async def acquire_send(self) -> None:
        """Wait for the next slot to write a request to its connection."""
        delay = self.reserve_send()
        if delay > 0:
            await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return f"RateLimit(requests={self.requests!r}, per_seconds={self.per_seconds!r})"


def as_rate_limit(value: RateLimit | float | None) -> RateLimit | None:
    """``rate_limit=`` as given by users: a :class:`RateLimit`, requests per minute, or None."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"rate_limit must be a number of requests per minute or a RateLimit, got {value!r}"
        )
    return RateLimit(value, 60.0)
