"""The retry policy: which failures are tried again, and how long to wait between attempts.

Retried: 408, 409, 429 (not the daily-quota codes), 5xx, dropped connections and timeouts,
with exponential backoff and jitter, honouring ``retry-after`` / ``retry-after-ms`` (capped).
400/401/403/404/413 are never retried. Retries go through tenacity.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

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
    """How many times to retry, and how long to wait before each retry."""

    __slots__ = ("backoff_base", "backoff_max", "max_retries", "retry_after_max")

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        retry_after_max: float = RETRY_AFTER_MAX,
    ) -> None:
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries!r}")
        if backoff_base < 0 or backoff_max < 0:
            raise ConfigurationError("backoff_base and backoff_max must be 0 or more seconds")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max

    def wait(self, state: RetryCallState) -> float:
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

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` with the retry policy; the last error is raised when it gives up."""
        try:
            return await attempt()
        except ModelError as exc:
            if not self.max_retries or not is_retryable(exc):
                raise
            first: BaseException = exc
        wait = self.first_wait(first)
        if logger.isEnabledFor(logging.INFO):
            logger.info("attempt 1 failed (%s); retrying in %.2f s", type(first).__name__, wait)
        await asyncio.sleep(wait)
        retryer = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries),
            wait=self.wait,
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

    def first_wait(self, exc: BaseException) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(min(retry_after, self.retry_after_max))
        delay = min(self.backoff_max, self.backoff_base)
        return delay / 2 + random.uniform(0, delay / 2)
