"""The pooled HTTP clients of one event loop, split into shards with a gate each."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping

import httpx

__all__ = ["LoopPool"]


class LoopPool:
    """The pooled clients of one event loop.

    ``max_connections`` is split over clients of at most :data:`_SHARD` connections, each with a
    gate (a semaphore of its size): requests wait in the gate rather than in httpcore's pool,
    whose bookkeeping costs grow with the square of its connections and of its waiting
    requests. At 1,000 concurrent requests this keeps the client's CPU cost per request flat.
    """

    __slots__ = ("_next", "closed", "shards")

    def __init__(
        self, timeout: httpx.Timeout, limits: httpx.Limits, headers: Mapping[str, str]
    ) -> None:
        total = limits.max_connections
        count = 1 if not total else -(-total // _SHARD)
        self.shards: list[tuple[httpx.AsyncClient, asyncio.Semaphore | None]] = []
        for index in range(count):
            size = None if not total else min(_SHARD, total - index * _SHARD)
            keepalive = limits.max_keepalive_connections
            shard_limits = httpx.Limits(
                max_connections=size,
                max_keepalive_connections=(
                    size if keepalive is None or size is None else min(size, keepalive)
                ),
                keepalive_expiry=limits.keepalive_expiry,
            )
            client = httpx.AsyncClient(
                timeout=timeout, limits=shard_limits, headers=headers, verify=_ssl_context()
            )
            self.shards.append((client, asyncio.Semaphore(size) if size else None))
        self._next = 0
        self.closed = False

    def pick(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore | None]:
        shards = self.shards
        if len(shards) == 1:
            return shards[0]
        self._next = (self._next + 1) % len(shards)
        return shards[self._next]

    async def aclose(self) -> None:
        self.closed = True
        for client, _ in self.shards:
            await client.aclose()


_SHARD = 20


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # One context for every client: loading the CA bundle takes tens of milliseconds.
    return httpx.create_ssl_context()
