"""Keeping secrets (API tokens) out of every text agentkit produces."""

from __future__ import annotations

__all__ = ["redact", "safe_text", "snippet"]


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***`` (a very short test token is left alone)."""
    return text.replace(secret, "***") if secret and len(secret) >= 8 else text


def snippet(text: str, secret: str | None, limit: int = 120) -> str:
    """The start of ``text`` for an error message, redacted before it is cut."""
    return redact(text[: limit + (len(secret) if secret else 0)], secret)[:limit]


def safe_text(exc: BaseException, secret: str | None) -> str:
    return redact(str(exc) or type(exc).__name__, secret)
