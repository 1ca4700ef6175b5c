"""How a model transport tells whoever listens (tracing) that it tries a request again.

The listener is a context variable: set around one model request, it hears the retries of
that request only, also when many requests run at once. Unset, a retry costs one lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["RetryListener", "note_retry", "retry_listener"]

RetryListener = Callable[[int, BaseException], None]
"""Called with the number of the attempt that failed (from 1) and its error."""

retry_listener: ContextVar[RetryListener | None] = ContextVar(
    "agentkit_retry_listener", default=None
)


def note_retry(attempt: int, error: BaseException) -> None:
    """Report that attempt ``attempt`` failed with ``error`` and the request will be retried."""
    listener = retry_listener.get()
    if listener is not None:
        listener(attempt, error)
