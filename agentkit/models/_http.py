"""HTTP shared by every HTTP model backend: client ownership, retries, errors, rate limiting.

- :class:`Transport` owns one pooled :class:`httpx.AsyncClient` per event loop (created on first
  use in that loop), or uses the client the caller passed (and then never closes it).
- Retries go through tenacity: 408, 409, 429 (not the daily-quota codes), 5xx, dropped
  connections and timeouts, with exponential backoff and jitter, honouring ``retry-after`` /
  ``retry-after-ms`` (capped). 400/401/403/404/413 are never retried.
- :func:`error_from_response` maps a failed reply to the :mod:`agentkit.errors` tree, with the
  provider's code and text and what to do.
- :class:`RateLimit` spaces requests client-side; one instance can be shared by many models.
- :class:`HTTPModel` is the common body of the backends: request, stream (retried only before
  its first event reaches the caller), sync twins, context managers.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .._sync import run_sync
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    StreamTruncatedError,
)
from ..messages import Message, ModelEvent, ModelResponse, ResponseDone, TextDelta
from ..settings import ModelSettings
from ._sse import SSEDecoder, StreamAccumulator
from ._textcalls import build_response

if TYPE_CHECKING:
    from types import TracebackType

    from ..tools import Tool

__all__ = ["HTTPModel", "RateLimit", "Transport", "error_from_response"]

logger = logging.getLogger("agentkit.models")

T = TypeVar("T")

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
RETRY_AFTER_MAX = 60.0
MAX_CONTENT_CHARS = 131_072

QUOTA_CODES = frozenset({3036, 4006})
TIMEOUT_CODES = frozenset({3007, 3008, 3046})
_CODE_CLASS: dict[int, type[ModelHTTPError]] = {
    3036: QuotaExceededError,
    4006: QuotaExceededError,
    3040: RateLimitError,
    10000: AuthenticationError,
    5016: PermissionDeniedError,
    5018: PermissionDeniedError,
    3041: PermissionDeniedError,
    3023: PermissionDeniedError,
    5007: NotFoundError,
    3042: NotFoundError,
    3006: RequestTooLargeError,
    5006: BadRequestError,
    5004: BadRequestError,
    3003: BadRequestError,
}
_STATUS_CLASS: dict[int, type[ModelHTTPError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
}
_AI_ERROR = re.compile(r"AiError:\s*(\d+)")


# --- rate limiting -----------------------------------------------------------------------------


class RateLimit:
    """At most ``requests`` request starts per ``per_seconds``, spaced evenly, client-side.

    One instance can be shared by several models (pass the same object as ``rate_limit=``),
    by concurrent runs and by different event loops and threads: the next free slot is taken
    under a lock, then the caller sleeps until it without holding anything.
    """

    __slots__ = ("_clock", "_interval", "_lock", "_next", "per_seconds", "requests")

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
        self._clock: Callable[[], float] = time.monotonic

    def reserve(self) -> float:
        """Take the next slot; return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = self._next if self._next > now else now
            self._next = slot + self._interval
        return slot - now

    async def acquire(self) -> None:
        """Wait for the next slot."""
        delay = self.reserve()
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


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hints:
    """What to tell users for each failure, per provider."""

    provider: str = "server"
    auth: str = "Check the API key."
    permission: str = "The key lacks permission for this model or route."
    not_found: str = "Check the base URL and the model name."


def _parse_error_body(content: bytes) -> tuple[int | str | None, str]:
    try:
        data = json.loads(content)
    except ValueError:
        text = content[:300].decode("utf-8", "replace").strip()
        return None, text or "(empty body)"
    code: Any = None
    detail: Any = None
    if isinstance(data, dict):
        errors = data.get("errors")
        error = data.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            detail = errors[0].get("message")
        elif isinstance(error, dict):
            code = error.get("code") or error.get("type")
            detail = error.get("message")
        elif isinstance(error, str):
            detail = error
        if detail is None:
            detail = data.get("detail") or data.get("message")
    if detail is None:
        detail = content[:300].decode("utf-8", "replace")
    if not isinstance(detail, str):
        detail = json.dumps(detail, ensure_ascii=False)[:300]
    if code is None:
        match = _AI_ERROR.search(detail)
        if match:
            code = int(match.group(1))
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int | str) or isinstance(code, bool):
        code = None
    return code, detail.strip()


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    model_name: str,
    hints: Hints = Hints(),
    secret: str | None = None,
) -> ModelHTTPError:
    """The :class:`ModelHTTPError` subclass for a failed reply, with a message that says what to do."""
    if secret and len(secret) >= 8:  # (a very short test token would mangle the text)
        content = content.replace(secret.encode(), b"***")  # before any cut could split it
    code, detail = _parse_error_body(content)
    detail = redact(detail, secret)
    cls: type[ModelHTTPError] | None = _CODE_CLASS.get(code) if isinstance(code, int) else None
    if cls is not None and status >= 500 and cls not in (QuotaExceededError, RateLimitError):
        cls = None
    if cls is None:
        cls = _STATUS_CLASS.get(status) or (ServerError if status >= 500 else ModelHTTPError)
    if cls is RateLimitError and code in QUOTA_CODES:
        cls = QuotaExceededError
    retry_after = parse_retry_after(headers)
    if cls is QuotaExceededError:
        advice = (
            "The daily free allocation of Workers AI is used up; this is not retried. "
            "Wait for the daily reset (00:00 UTC) or move the account to Workers Paid."
        )
    elif cls is RateLimitError:
        advice = (
            "Too many requests or no capacity right now (Workers AI allows 300 text-generation "
            "requests per minute per account). Lower the concurrency or pass rate_limit=."
        )
    elif cls is AuthenticationError:
        advice = hints.auth
    elif cls is PermissionDeniedError:
        advice = hints.permission
    elif cls is NotFoundError:
        advice = hints.not_found
    elif cls is RequestTooLargeError:
        advice = "The request is too large for the model: shorten the messages or tool outputs."
    elif cls is BadRequestError:
        advice = "The server rejected the request body; the text above names the problem."
    elif cls is ServerError:
        advice = "The server failed; this is retried with backoff. Try again later if it persists."
    elif status == 408 or code in TIMEOUT_CODES:
        advice = "The model took too long to answer; this is retried with backoff."
    elif 300 <= status < 400:
        location = headers.get("location", "")
        advice = f"The server redirected ({location or 'no location'}); check base_url."
    else:
        advice = ""
    label = f", {hints.provider} error {code}" if code is not None else ""
    message = f"{model_name}: HTTP {status}{label}: {detail}. {advice}".rstrip()
    return cls(message, status=status, code=code, detail=detail, retry_after=retry_after)


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt may be tried again."""
    if isinstance(exc, QuotaExceededError):
        return False
    if isinstance(exc, ModelTimeoutError | ModelConnectionError | StreamTruncatedError):
        return True
    if isinstance(exc, ModelHTTPError):
        return (
            exc.status in (408, 409, 429)
            or exc.status >= 500
            or isinstance(exc, RateLimitError)
            or exc.code in TIMEOUT_CODES
        )
    return False


# --- transport ---------------------------------------------------------------------------------


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
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries!r}")
        if backoff_base < 0 or backoff_max < 0:
            raise ConfigurationError("backoff_base and backoff_max must be 0 or more seconds")
        self.headers = dict(headers)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else _timeout(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.rate_limit = as_rate_limit(rate_limit)
        self.secret = secret
        self.hints = hints
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self._user_client = http_client
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
        self._last: tuple[asyncio.AbstractEventLoop, _LoopPool] | None = None
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
                pool = _LoopPool(self.timeout, self._limits, self.headers)
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

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(min(retry_after, self.retry_after_max))
        # Tenacity counts from the second attempt (the first runs before it takes over).
        delay: float = min(self.backoff_max, self.backoff_base * 2.0**state.attempt_number)
        return delay / 2 + random.uniform(0, delay / 2)

    def _before_sleep(self, state: RetryCallState) -> None:
        if logger.isEnabledFor(logging.INFO):
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            logger.info(
                "attempt %d failed (%s); retrying in %.2f s",
                state.attempt_number + 1,
                type(exc).__name__,
                wait,
            )

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` with the retry policy; the last error is raised when it gives up."""
        try:
            return await attempt()
        except ModelError as exc:
            if not self.max_retries or not is_retryable(exc):
                raise
            first: BaseException = exc
        wait = self._first_wait(first)
        if logger.isEnabledFor(logging.INFO):
            logger.info("attempt 1 failed (%s); retrying in %.2f s", type(first).__name__, wait)
        await asyncio.sleep(wait)
        retryer = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return await retryer(attempt)
        except ModelError as exc:
            attempts = 1 + retryer.statistics.get("attempt_number", 1)
            exc.args = (f"{exc.message} (gave up after {attempts} attempts)", *exc.args[1:])
            raise

    def _first_wait(self, exc: BaseException) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(min(retry_after, self.retry_after_max))
        delay = min(self.backoff_max, self.backoff_base)
        return delay / 2 + random.uniform(0, delay / 2)

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
            f"{model}: the connection to {host} failed ({type(exc).__name__}: {_safe(exc, self.secret)}). "
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
            raise _unreadable(
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


class _LoopPool:
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


def _timeout(seconds: float | None) -> httpx.Timeout:
    if seconds is None:
        return httpx.Timeout(None)
    if not seconds > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {seconds!r}")
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def _describe_timeout(timeout: httpx.Timeout) -> str:
    return f"read timeout {timeout.read} s, connect timeout {timeout.connect} s"


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***`` (a very short test token is left alone)."""
    return text.replace(secret, "***") if secret and len(secret) >= 8 else text


def snippet(text: str, secret: str | None, limit: int = 120) -> str:
    """The start of ``text`` for an error message, redacted before it is cut."""
    return redact(text[: limit + (len(secret) if secret else 0)], secret)[:limit]


def _safe(exc: BaseException, secret: str | None) -> str:
    return redact(str(exc) or type(exc).__name__, secret)


def _unreadable(
    model: str, content_type: str | None, content: bytes, secret: str | None = None
) -> ModelResponseError:
    start = snippet(content[:4096].decode("utf-8", "replace"), secret)
    return ModelResponseError(
        f"{model}: the reply is not valid JSON (content type {content_type or 'missing'!s}, "
        f"{len(content)} bytes, starting {start!r}). The URL may point at something that is "
        "not a model server, or a proxy answered instead; check base_url."
    )


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# --- the shared model body ---------------------------------------------------------------------


class HTTPModel:
    """What every HTTP backend shares. Subclasses translate messages, tools and replies."""

    _transport: Transport
    _model: str
    _settings: ModelSettings
    _settings_fields: dict[str, Any]
    _recover: bool

    def _init_http(
        self,
        model: str,
        *,
        token: str | None,
        headers: Mapping[str, str] | None,
        settings: ModelSettings | None,
        recover_text_calls: bool,
        hints: Hints,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        rate_limit: RateLimit | float | None,
        http_client: httpx.AsyncClient | None,
        limits: httpx.Limits | None,
    ) -> None:
        """Set up the transport (headers, bearer token, retries, pool) and the model fields."""
        sent = {"content-type": "application/json", **(headers or {})}
        if token:
            sent["authorization"] = f"Bearer {token}"
        self._transport = Transport(
            headers=sent,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rate_limit=rate_limit,
            http_client=http_client,
            secret=token,
            hints=hints,
            limits=limits,
        )
        self._init_model(model, settings, recover_text_calls)

    def _init_model(self, model: str, settings: ModelSettings | None, recover: bool) -> None:
        self._model = model
        self._settings = settings if settings is not None else ModelSettings()
        self._settings_fields = self._settings.to_request()
        self._recover = recover
        self._tools_cache: dict[tuple[int, ...], tuple[tuple[Any, ...], bytes]] = {}

    @property
    def model_name(self) -> str:
        """The model this backend sends requests to."""
        return self._model

    @property
    def settings(self) -> ModelSettings:
        """Default sampling settings, merged under the settings of each request."""
        return self._settings

    # hooks for subclasses

    def _url(self) -> httpx.URL:
        raise NotImplementedError

    def _wire_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _tool_definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _extra_fields(self, stream: bool) -> dict[str, Any]:
        return {}

    def _reply_parts(self, data: Any) -> tuple[Any, Any, Any, Any]:
        """``(text, raw_calls, usage, finish_reason)`` of a non-streamed reply."""
        raise NotImplementedError

    # request building

    def _fields(self, settings: ModelSettings | None) -> dict[str, Any]:
        if settings is None:
            return self._settings_fields
        return self._settings.merge(settings).to_request()

    def _tools_json(self, tools: Sequence[Tool]) -> bytes:
        if not tools:
            return b""
        key = tuple(map(id, tools))
        hit = self._tools_cache.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], tools, strict=True)):
            return hit[1]
        encoded = dumps(self._tool_definitions(tools))
        if len(self._tools_cache) >= 32:
            self._tools_cache.pop(next(iter(self._tools_cache)))
        self._tools_cache[key] = (tuple(tools), encoded)
        return encoded

    def _body(
        self,
        fields: dict[str, Any],
        tools: Sequence[Tool],
        stream: bool,
    ) -> bytes:
        body = dumps({**fields, **self._extra_fields(stream), "stream": stream})
        tools_json = self._tools_json(tools)
        if tools_json:
            body = body[:-1] + b',"tools":' + tools_json + b"}"
        return body

    def _messages_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None,
        stream: bool,
    ) -> tuple[bytes, int | None]:
        fields = self._fields(settings)
        wire = self._wire_messages(messages)
        for index, item in enumerate(wire):
            if len(item["content"]) > MAX_CONTENT_CHARS:
                raise ConfigurationError(
                    f"message {index} ({item['role']}) has {len(item['content'])} characters; "
                    f"at most {MAX_CONTENT_CHARS} are accepted per message. Shorten it "
                    "(for tool results, limit the tool output)."
                )
        return self._body({"messages": wire, **fields}, tools, stream), fields.get("max_tokens")

    def _response(
        self,
        data: Any,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message] = (),
    ) -> ModelResponse:
        text, calls, usage, finish = self._reply_parts(data)
        return build_response(
            text=text,
            raw_calls=calls,
            usage=usage,
            finish_reason=finish,
            tools=tools,
            max_tokens=max_tokens,
            model_name=self._model,
            raw=data,
            recover=self._recover,
            history=history,
        )

    # the Model protocol

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send the conversation and return the whole reply (retried per the retry policy)."""
        body, max_tokens = self._messages_body(messages, tools, settings, False)
        return await self._send(body, tools, max_tokens, messages)

    async def _send(
        self,
        body: bytes,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message] = (),
    ) -> ModelResponse:
        url = self._url()
        transport = self._transport
        model = self._model

        async def attempt() -> ModelResponse:
            data = await transport.post_json(url, body, model)
            return self._response(data, tools, max_tokens, history)

        return await transport.retrying(attempt)

    def request_sync(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """:meth:`request` for synchronous code (works inside a running event loop too)."""
        return run_sync(self.request(messages, tools, settings))

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        """Yield :class:`TextDelta` events as text arrives, then one :class:`ResponseDone`.

        Failures before the first event reaches the caller are retried like :meth:`request`;
        after that, an error ends the stream (a stream cut short raises
        :class:`~agentkit.errors.StreamTruncatedError`).
        """
        body, max_tokens = self._messages_body(messages, tools, settings, True)
        events: AsyncGenerator[ModelEvent, None] | None = None

        async def first_event() -> ModelEvent:
            nonlocal events
            gen = self._stream_once(body, tools, max_tokens, messages)
            try:
                event = await gen.__anext__()
            except BaseException:
                await gen.aclose()
                raise
            events = gen
            return event

        first = await self._transport.retrying(first_event)
        assert events is not None
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _stream_once(
        self,
        body: bytes,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message],
    ) -> AsyncGenerator[ModelEvent, None]:
        transport = self._transport
        model = self._model
        async with transport.open_stream(self._url(), body, model) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                # A server that ignored "stream": read the whole reply instead.
                try:
                    content = await response.aread()
                except httpx.HTTPError as exc:
                    raise transport.stream_error(exc, model, 0) from exc
                try:
                    data = json.loads(content)
                except ValueError:
                    raise _unreadable(model, content_type, content, transport.secret) from None
                whole = self._response(data, tools, max_tokens, history)
                if whole.text and not whole.tool_calls:
                    yield TextDelta(whole.text)
                yield ResponseDone(whole)
                return

            acc = StreamAccumulator()
            decoder = SSEDecoder()
            hold = _Holdback(tools) if (tools and self._recover) else None
            count = 0
            done = False
            try:
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        count += 1
                        if event.data == "[DONE]":
                            done = True
                            break
                        delta = self._feed(acc, event.data, model, transport)
                        if delta:
                            if hold is not None:
                                delta = hold.push(delta)
                            if delta:
                                yield TextDelta(delta)
                    if done:
                        break
            except httpx.HTTPError as exc:
                raise transport.stream_error(exc, model, count) from exc
            if not done:
                for event in decoder.flush():
                    if event.data == "[DONE]":
                        done = True
                        break
                    self._feed(acc, event.data, model, transport)
            if not done:
                raise StreamTruncatedError(
                    f"{model}: the stream ended after {count} events without [DONE]; "
                    "the reply is incomplete."
                )
        result = build_response(
            text=acc.text,
            raw_calls=acc.wire_calls(),
            usage=acc.usage,
            finish_reason=acc.finish_reason,
            tools=tools,
            max_tokens=max_tokens,
            model_name=model,
            raw={"stream": True, "usage": acc.usage, "finish_reason": acc.finish_reason},
            recover=self._recover,
            history=history,
        )
        if hold is not None and hold.held and not result.tool_calls:
            yield TextDelta(hold.release())
        yield ResponseDone(result)

    def _feed(self, acc: StreamAccumulator, data: str, model: str, transport: Transport) -> str:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ModelResponseError(
                f"{model}: a stream event is not valid JSON: {snippet(data, transport.secret)!r}"
            ) from None
        if (
            isinstance(chunk, dict)
            and "error" in chunk
            and not ("choices" in chunk or "response" in chunk)
        ):
            raise transport._error(500, {}, data.encode(), model)
        return acc.feed(chunk)

    # lifetime

    async def aclose(self) -> None:
        """Close the pooled HTTP connections this model opened (a caller's client stays open)."""
        await self._transport.aclose()

    def close(self) -> None:
        """:meth:`aclose` for synchronous code."""
        run_sync(self._transport.aclose())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Holdback:
    """Holds back streamed text that may be a tool call written as text.

    If the answer starts like a call (``{``, ``[``, ``<``, a fence, or an offered tool's name
    followed by ``(``), its deltas are kept until the end: if calls are recovered they are not
    shown as an answer, otherwise the text is released in one delta.
    """

    __slots__ = ("_decided", "_names", "held")

    def __init__(self, tools: Sequence[Any]) -> None:
        self._names = [getattr(t, "name", "") for t in tools]
        self._decided = False
        self.held: list[str] = []

    def push(self, delta: str) -> str:
        if self._decided:
            if self.held:
                self.held.append(delta)
                return ""
            return delta
        self.held.append(delta)
        start = "".join(self.held).lstrip()
        if not start:
            return ""
        if start[0] in "{[<`":
            self._decided = True
            return ""
        for name in self._names:
            candidate = name + "("
            if start.startswith(candidate):
                self._decided = True
                return ""
            if candidate.startswith(start):
                return ""  # may still become a call: wait for more text
        self._decided = True
        return self.release()

    def release(self) -> str:
        text = "".join(self.held)
        self.held = []
        return text
