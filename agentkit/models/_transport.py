"""The HTTP transport of one model instance: pooled clients, rate limiting, retries, errors.

:class:`Transport` owns one pooled :class:`httpx.AsyncClient` per event loop (created on first
use in that loop), or uses the client the caller passed (and then never closes it).

- The rate limit is applied before a request waits for a connection, and again when it is about
  to be written to its connection (an httpcore trace hook): a pool that queues requests behind a
  stalled server cannot release them to the server faster than the limit.
- Each call has a deadline (event-loop time) bounding all its attempts, waits and reads.
- Reply bodies are read with a cap on their decoded size.
- Any failure below HTTP (httpx, sockets, anything else) becomes a typed agentkit error, and no
  text in it or in its cause chain holds the token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from .._json import loads
from ..errors import (
    AgentKitError,
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelTimeoutError,
    StreamTruncatedError,
)
from ._body import DEFAULT_MAX_RESPONSE_BYTES, body_chunks, check_size_limit, read_body
from ._errors_map import Hints, error_from_response, unreadable
from ._pool import LoopPool
from ._ratelimit import RateLimit, as_rate_limit
from ._redact import LOG_FILTER, Secrets, safe_text, scrub_chain
from ._retry import RETRY_AFTER_MAX, RetryPolicy

__all__ = [
    "DEFAULT_DEADLINE_FACTOR",
    "DEFAULT_TIMEOUT",
    "ERROR_BODY_BYTES",
    "Transport",
    "check_base_url",
    "shown_url",
]

logger = logging.getLogger("agentkit.models")

T = TypeVar("T")

DEFAULT_TIMEOUT = 120.0
DEFAULT_DEADLINE_FACTOR = 5
"""Without ``deadline=``, a call may take this many times the read ``timeout`` in total."""
ERROR_BODY_BYTES = 1024 * 1024
"""The most of an error reply's body that is read (the rest is not needed to report it)."""


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
        secret: Secrets,
        hints: Hints,
        limits: httpx.Limits | None = None,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.retry = RetryPolicy(max_retries, backoff_base, backoff_max, retry_after_max)
        self.headers = dict(headers)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else _timeout(timeout)
        self.rate_limit = as_rate_limit(rate_limit)
        self.secret = secret
        self.deadline = _deadline(deadline, self.timeout)
        self.max_response_bytes = check_size_limit(max_response_bytes, "max_response_bytes")
        self.hints = hints
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self._user_client = http_client
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}
        self._last: tuple[asyncio.AbstractEventLoop, LoopPool] | None = None
        self._lock = threading.Lock()
        LOG_FILTER.register(self, secret)

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

    def _request_headers(self, extra: Mapping[str, str] | None = None) -> Mapping[str, str] | None:
        # Owned clients carry the headers already; a caller's client gets them per request.
        if self._user_client is None:
            return extra
        return self.headers if extra is None else {**self.headers, **extra}

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

    # retries and the deadline

    def deadline_end(self) -> float | None:
        """The event-loop time by which a call starting now must be over (None: no deadline)."""
        if self.deadline is None:
            return None
        return asyncio.get_running_loop().time() + self.deadline

    async def retrying(self, attempt: Callable[[], Awaitable[T]], end: float | None = None) -> T:
        """Run ``attempt`` with the retry policy; the last error is raised when it gives up."""
        return await self.retry.run(attempt, end)

    def deadline_error(self, model: str, doing: str) -> ModelTimeoutError:
        """The error for a call that reached its deadline while ``doing`` something."""
        return ModelTimeoutError(
            f"{model}: the call did not finish within its deadline of {self.deadline:g} s "
            f"(deadline=, for the whole call, retries included; reached while {doing}). "
            "Pass a larger deadline= if the model needs more time."
        )

    # errors

    def _error(
        self, status: int, headers: Mapping[str, str], content: bytes, model: str
    ) -> ModelHTTPError:
        return error_from_response(
            status, headers, content, model_name=model, hints=self.hints, secret=self.secret
        )

    def _transport_error(self, exc: BaseException, model: str, url: httpx.URL) -> ModelError:
        scrub_chain(exc, self.secret)
        host = url.host
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

    def stream_error(self, exc: BaseException, model: str, events: int) -> ModelError:
        """An error while reading a stream: a timeout, or a stream cut short."""
        scrub_chain(exc, self.secret)
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{model}: the stream stalled for longer than the timeout after {events} events "
                f"({_describe_timeout(self.timeout)}); pass a larger timeout= if needed."
            )
        return StreamTruncatedError(
            f"{model}: the connection dropped after {events} events, before [DONE] "
            f"({type(exc).__name__}: {safe_text(exc, self.secret)}); the reply is incomplete."
        )

    # requests

    def _rate_hook(self, client: httpx.AsyncClient) -> dict[str, Any] | None:
        """Request extensions that take a rate-limit send slot as the request is written.

        httpcore calls the ``trace`` hook just before it writes a request's headers to its
        connection, after any wait for a free connection. Clients whose transport is not
        httpcore's (a mock, a custom transport) never call it: for them the slot taken before
        sending is the only one.
        """
        limit = self.rate_limit
        if limit is None or not _traces_sends(client):
            return None

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith("send_request_headers.started"):
                await limit.acquire_send()

        return {"trace": trace}

    @asynccontextmanager
    async def _open(
        self,
        url: httpx.URL,
        body: bytes,
        model: str,
        end: float | None,
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send ``body`` and yield the response once its status is OK (else raise its error)."""
        client, gate = self._client_and_gate()
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if debug else 0.0
        extensions = self._rate_hook(client)
        error: ModelError | None = None
        cause: BaseException | None = None
        response: httpx.Response | None = None
        held = False
        ok = False
        try:
            async with asyncio.timeout_at(end) as scope:
                try:
                    if self.rate_limit is not None:
                        await self.rate_limit.acquire()
                    request = client.build_request(
                        "POST",
                        url,
                        content=body,
                        headers=self._request_headers(headers),
                        extensions=extensions,
                    )
                    if gate is not None:
                        await gate.acquire()
                        held = True
                    response = await client.send(request, stream=True)
                    if response.status_code >= 300:
                        content = await read_body(response, ERROR_BODY_BYTES, model, cut=True)
                        error = self._error(response.status_code, response.headers, content, model)
                except AgentKitError:
                    raise
                except Exception as exc:  # httpx, sockets, anything below HTTP
                    error, cause = self._transport_error(exc, model, url), exc
        except TimeoutError:
            if not scope.expired():
                raise
            error, cause = self.deadline_error(model, "waiting for the server's answer"), None
        else:
            ok = error is None
        finally:
            if not ok:
                await _release(response, gate if held else None)
        if debug and response is not None:
            logger.debug(
                "POST %s model=%s status=%d %.1f ms sent=%d%s",
                url.path,
                model,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                len(body),
                " (stream)" if stream else "",
            )
        if error is not None:
            # Raised here, outside any except block: the chain holds only a scrubbed cause.
            raise error from cause
        assert response is not None
        try:
            yield response
        finally:
            await _release(response, gate if held else None)

    async def post_json(
        self,
        url: httpx.URL,
        body: bytes,
        model: str,
        end: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST ``body`` once (no retry) and return the decoded JSON reply; ``headers`` are
        sent on top of the transport's own."""
        async with self._open(url, body, model, end, False, headers) as response:
            content = await self.read(response, model, end)
        try:
            return loads(content)
        except ValueError as exc:
            kind = response.headers.get("content-type")
            error = unreadable(model, kind, content, self.secret, exc)
        raise error

    async def read(self, response: httpx.Response, model: str, end: float | None) -> bytes:
        """The whole (capped) body of ``response``, within the deadline."""
        error: ModelError | None = None
        cause: BaseException | None = None
        try:
            async with asyncio.timeout_at(end) as scope:
                try:
                    return await read_body(response, self.max_response_bytes, model)
                except AgentKitError:
                    raise
                except Exception as exc:
                    error, cause = self._transport_error(exc, model, response.url), exc
        except TimeoutError:
            if not scope.expired():
                raise
            error = self.deadline_error(model, "reading the reply")
        raise error from cause

    @asynccontextmanager
    async def open_stream(
        self,
        url: httpx.URL,
        body: bytes,
        model: str,
        end: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` for a streamed reply; yields the response once its status is OK."""
        async with self._open(url, body, model, end, True, headers) as response:
            yield response

    async def chunks(
        self, response: httpx.Response, model: str, end: float | None
    ) -> AsyncGenerator[bytes, None]:
        """The decoded body of a streamed reply, capped, each read bounded by the deadline.

        Transport failures are raised as they are (``httpx`` errors), for the caller to report
        with what it has read so far (:meth:`stream_error`).
        """
        pieces = body_chunks(response, self.max_response_bytes, model)
        try:
            while True:
                late: ModelTimeoutError | None = None
                try:
                    async with asyncio.timeout_at(end) as scope:
                        piece = await anext(pieces, None)
                except TimeoutError:
                    if not scope.expired():
                        raise
                    piece, late = None, self.deadline_error(model, "reading the stream")
                if late is not None:
                    raise late
                if piece is None:
                    return
                yield piece
        finally:
            await pieces.aclose()


async def _release(response: httpx.Response | None, gate: asyncio.Semaphore | None) -> None:
    try:
        if response is not None:
            await response.aclose()
    finally:
        if gate is not None:
            gate.release()


def _traces_sends(client: httpx.AsyncClient) -> bool:
    """Whether every request of ``client`` goes through httpcore (which calls the trace hook)."""
    transports = [getattr(client, "_transport", None)]
    mounts = getattr(client, "_mounts", None)
    if isinstance(mounts, dict):
        transports.extend(t for t in mounts.values() if t is not None)
    return all(isinstance(t, httpx.AsyncHTTPTransport) for t in transports)


def _deadline(value: float | None, timeout: httpx.Timeout) -> float | None:
    if value is None:
        read = timeout.read
        return None if read is None else DEFAULT_DEADLINE_FACTOR * read
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(
            f"deadline must be a positive number of seconds (math.inf for none), got {value!r}"
        )
    return None if value == float("inf") else float(value)


def _timeout(seconds: float | None) -> httpx.Timeout:
    if seconds is None:
        return httpx.Timeout(None)
    if not seconds > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {seconds!r}")
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def _describe_timeout(timeout: httpx.Timeout) -> str:
    return f"read timeout {timeout.read} s, connect timeout {timeout.connect} s"


_USERINFO = re.compile(r"//[^/?#@]*@")


def shown_url(url: str) -> str:
    """``url`` fit to show in a repr or an error: credentials in it (``//user:pass@``) masked."""
    return _USERINFO.sub("//***@", url)


def check_base_url(value: object, name: str) -> str:
    """``value`` as an HTTP(S) URL without a trailing slash, or a :class:`ConfigurationError`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be an http:// or https:// URL, got {value!r}")
    text = value.strip().rstrip("/")
    problem = ""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        problem = shown_url(str(exc))
    else:
        if url.scheme not in ("http", "https"):
            problem = "the scheme must be http or https"
        elif not url.host:
            problem = "it names no host"
        elif any(ch.isspace() for ch in text):
            problem = "it contains whitespace"
        elif url.port is not None and not 0 < url.port < 65536:
            problem = f"port {url.port} is outside 1..65535"
    if problem:
        raise ConfigurationError(
            f"{name} is not a usable URL ({problem}): {shown_url(text)!r}. Pass e.g. "
            "'https://api.cloudflare.com/client/v4' or 'http://localhost:11434/v1'."
        )
    return text
