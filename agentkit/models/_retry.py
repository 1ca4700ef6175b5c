"""The retry policy: which failures are tried again, and how long to wait between attempts.

Retried: 408, 409, 429 (not the daily-quota codes), 5xx, dropped connections and timeouts,
with exponential backoff and jitter, honouring ``retry-after`` / ``retry-after-ms`` (capped).
400/401/403/404/413 are never retried. A ``retry-after`` wait gets jitter on top of it, so
that many requests told to come back at the same time do not all come back at once. No retry
starts when its wait would pass the deadline of the call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelTimeoutError,
    QuotaExceededError,
    RateLimitError,
    StreamTruncatedError,
)
from ._errors_map import TIMEOUT_CODES

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_RETRIES",
    "RETRY_AFTER_MAX",
    "RetryPolicy",
    "is_retryable",
]

logger = logging.getLogger("agentkit.models")

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 60.0


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


class RetryPolicy:
    """How many times to retry, and how long to wait before each retry.

    The n-th retry waits a random time between half and all of
    ``min(backoff_max, backoff_base * 2 ** (n - 1))``. A reply with ``retry-after`` waits that
    long (at most ``retry_after_max``) plus a random jitter of up to half of it plus
    ``min(backoff_base, 1)`` seconds, so that many requests told the same time spread out.
    """

    __slots__ = ("backoff_base", "backoff_max", "max_retries", "retry_after_max")

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        retry_after_max: float = RETRY_AFTER_MAX,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer, 0 or more, got {max_retries!r}"
            )
        if not backoff_base >= 0 or not backoff_max >= 0:
            raise ConfigurationError("backoff_base and backoff_max must be 0 or more seconds")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max

    def delay(self, exc: BaseException, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first) after ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            told = float(min(max(retry_after, 0.0), self.retry_after_max))
            return told + random.uniform(0, told / 2 + min(self.backoff_base, 1.0))
        step: float = min(self.backoff_max, self.backoff_base * 2.0 ** (retry - 1))
        return step / 2 + random.uniform(0, step / 2)

    async def run(self, attempt: Callable[[], Awaitable[T]], end: float | None = None) -> T:
        """Run ``attempt`` with the retry policy; the last error is raised when it gives up.

        ``end`` is the deadline of the whole call, in event-loop time: no retry starts when its
        wait would reach it.
        """
        loop = asyncio.get_running_loop()
        attempts = 0
        while True:
            try:
                return await attempt()
            except ModelError as exc:
                attempts += 1
                if not is_retryable(exc):
                    _gave_up(exc, attempts, "")
                    raise
                if attempts > self.max_retries:
                    _gave_up(exc, attempts, "")
                    raise
                wait = self.delay(exc, attempts)
                if end is not None and loop.time() + wait >= end:
                    if loop.time() < end:  # (an error that is the deadline itself says so)
                        _gave_up(exc, attempts, ": a retry would pass the deadline")
                    raise
                if logger.isEnabledFor(logging.INFO):
                    logger.info(
                        "attempt %d failed (%s); retrying in %.2f s",
                        attempts,
                        type(exc).__name__,
                        wait,
                    )
            await _sleep(wait)


def _gave_up(exc: ModelError, attempts: int, why: str) -> None:
    if attempts > 1 or why:
        plural = "s" if attempts > 1 else ""
        exc.args = (f"{exc.message} (gave up after {attempts} attempt{plural}{why})", *exc.args[1:])


_sleep = asyncio.sleep  # (tests replace it to record the waits)
