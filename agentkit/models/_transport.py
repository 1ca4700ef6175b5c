"""The HTTP transport of one model instance: pooled clients, rate limiting, retries, errors.

:class:`Transport` owns one pooled :class:`httpx.AsyncClient` per event loop (created on first
use in that loop), or uses the client the caller passed (and then never closes it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from ..errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelTimeoutError,
    StreamTruncatedError,
)
from ._errors_map import Hints, error_from_response, unreadable
from ._pool import LoopPool
from ._ratelimit import RateLimit, as_rate_limit
from ._redact import safe_text
from ._retry import RETRY_AFTER_MAX, RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "Transport"]

logger = logging.getLogger("agentkit.models")

T = TypeVar("T")

DEFAULT_TIMEOUT = 120.0


class Transport:
    """Pooled clients, retries, rate limiting and error mapping for one model instance."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        retry_after_max: float = RETRY_AFTER_MAX,
        rate_limit: RateLimit | float | None,
        http_client: httpx.AsyncClient | None,
        secret: str | None,
        hints: Hints,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.retry = RetryPolicy(max_retries, backoff_base, backoff_max, retry_after_max)
        self.headers = dict(headers)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else _timeout(timeout)
        self.rate_limit = as_rate_limit(rate_limit)
        self.secret = secret
        self.hints = hints
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self._user_client = http_client
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}
        self._last: tuple[asyncio.AbstractEventLoop, LoopPool] | None = None
        self._lock = threading.Lock()

    # clients

    def client(self) -> httpx.AsyncClient:
        """A client for the running event loop (the caller's own client if one was given)."""
        return self._client_and_gate()[0]

    def _client_and_gate(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore | None]:
        if self._user_client is not None:
            return self._user_client, None
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1].pick()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None or pool.closed:
                for stale in [lp for lp in self._pools if lp.is_closed()]:
                    del self._pools[stale]
                pool = LoopPool(self.timeout, self._limits, self.headers)
                self._pools[loop] = pool
            self._last = (loop, pool)
        return pool.pick()

    def _request_headers(self) -> Mapping[str, str] | None:
        # Owned clients carry the headers already; a caller's client gets them per request.
        return self.headers if self._user_client is not None else None

    async def aclose(self) -> None:
        """Close the clients this transport created (never a caller's client)."""
        with self._lock:
            pools = list(self._pools.items())
            self._pools.clear()
            self._last = None
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, pool in pools:
            if loop is current:
                await pool.aclose()
            elif loop.is_running() and not loop.is_closed():
                # Another loop's clients must be closed in that loop; do not wait for it (that
                # loop may be blocked waiting for us).
                asyncio.run_coroutine_threadsafe(pool.aclose(), loop)

    # retries

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` with the retry policy; the last error is raised when it gives up."""
        return await self.retry.run(attempt)

    # requests

    def _error(
        self, status: int, headers: Mapping[str, str], content: bytes, model: str
    ) -> ModelHTTPError:
        return error_from_response(
            status, headers, content, model_name=model, hints=self.hints, secret=self.secret
        )

    def _transport_error(
        self, exc: httpx.HTTPError, model: str, url: httpx.URL | str
    ) -> ModelError:
        host = httpx.URL(url).host if not isinstance(url, httpx.URL) else url.host
        if isinstance(exc, httpx.TimeoutException):
            kind = type(exc).__name__
            return ModelTimeoutError(
                f"{model}: no answer from {host} within the timeout ({kind}, {_describe_timeout(self.timeout)}). "
                "It is retried; pass a larger timeout= if the model needs more time."
            )
        return ModelConnectionError(
            f"{model}: the connection to {host} failed ({type(exc).__name__}: {safe_text(exc, self.secret)}). "
            "It is retried; check the base URL and the network if it persists."
        )

    async def post_json(self, url: httpx.URL, body: bytes, model: str) -> Any:
        """POST ``body`` once (no retry) and return the decoded JSON reply."""
        if self.rate_limit is not None:
            await self.rate_limit.acquire()
        client, gate = self._client_and_gate()
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if debug else 0.0
        try:
            if gate is None:
                response = await client.post(url, content=body, headers=self._request_headers())
            else:
                async with gate:
                    response = await client.post(url, content=body, headers=None)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model, url) from exc
        content = response.content
        if debug:
            logger.debug(
                "POST %s model=%s status=%d %.1f ms sent=%d received=%d",
                url.path,
                model,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                len(body),
                len(content),
            )
        if response.status_code >= 300:
            raise self._error(response.status_code, response.headers, content, model)
        try:
            return json.loads(content)
        except ValueError:
            raise unreadable(
                model, response.headers.get("content-type"), content, self.secret
            ) from None

    @asynccontextmanager
    async def open_stream(
        self, url: httpx.URL, body: bytes, model: str
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` for a streamed reply; yields the response once its status is OK."""
        if self.rate_limit is not None:
            await self.rate_limit.acquire()
        client, gate = self._client_and_gate()
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if debug else 0.0
        request = client.build_request("POST", url, content=body, headers=self._request_headers())
        if gate is not None:
            await gate.acquire()
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if gate is not None:
                gate.release()
            raise self._transport_error(exc, model, url) from exc
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        try:
            if debug:
                logger.debug(
                    "POST %s model=%s status=%d %.1f ms sent=%d (stream)",
                    url.path,
                    model,
                    response.status_code,
                    (time.perf_counter() - started) * 1000,
                    len(body),
                )
            if response.status_code >= 300:
                try:
                    content = await response.aread()
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, model, url) from exc
                raise self._error(response.status_code, response.headers, content, model)
            yield response
        finally:
            try:
                await response.aclose()
            finally:
                if gate is not None:
                    gate.release()

    def stream_error(self, exc: httpx.HTTPError, model: str, events: int) -> ModelError:
        """An error while reading a stream: a timeout, or a stream cut short."""
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{model}: the stream stalled for longer than the timeout after {events} events "
                f"({_describe_timeout(self.timeout)}); pass a larger timeout= if needed."
            )
        return StreamTruncatedError(
            f"{model}: the connection dropped after {events} events, before [DONE] "
            f"({type(exc).__name__}); the reply is incomplete."
        )


def _timeout(seconds: float | None) -> httpx.Timeout:
    if seconds is None:
        return httpx.Timeout(None)
    if not seconds > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {seconds!r}")
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def _describe_timeout(timeout: httpx.Timeout) -> str:
    return f"read timeout {timeout.read} s, connect timeout {timeout.connect} s"
