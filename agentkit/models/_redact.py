"""Secrets (API tokens): checked when they are read, and kept out of every text agentkit makes.

- :func:`clean_token` strips the whitespace a token read from a file or a secret store carries
  (a trailing newline) and refuses one that cannot be sent in a header, without quoting it.
- :func:`redact` replaces every form of a token (as is, JSON-escaped, repr-escaped) by ``***``,
  whatever its length.
- :func:`scrub_chain` redacts the texts of an exception and of its ``__cause__`` /
  ``__context__`` chain, so a low-level error kept as the cause of an agentkit error shows no
  token either.
- :data:`LOG_FILTER` redacts the records of the ``httpx`` / ``httpcore`` loggers (httpcore's
  DEBUG log prints response headers, which a careless server may echo the token into) for every
  token of a model that is alive.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import weakref
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "LOG_FILTER",
    "SecretLogFilter",
    "clean_token",
    "redact",
    "redact_bytes",
    "safe_text",
    "scrub_chain",
    "snippet",
]

MASK = "***"


def clean_token(value: str | None, what: str) -> str | None:
    """``value`` without surrounding whitespace; ``None`` if nothing is left.

    A token that cannot be an HTTP header value (non-ASCII characters, control characters or
    whitespace inside it) raises :class:`ConfigurationError` naming the problem and the position,
    never the value.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, got {type(value).__name__}")
    token = value.strip()
    if not token:
        return None
    for position, char in enumerate(token):
        if not char.isascii():
            raise ConfigurationError(
                f"{what} contains a non-ASCII character (at position {position} of "
                f"{len(token)}); API tokens are ASCII. Copy the token again from its source."
            )
        if not char.isprintable() or char.isspace():
            raise ConfigurationError(
                f"{what} contains whitespace or a control character inside it (at position "
                f"{position} of {len(token)}); API tokens have none. Copy the token again."
            )
    return token


@functools.lru_cache(maxsize=64)
def _forms(secret: str) -> tuple[str, ...]:
    """The ways ``secret`` can be written into a text: as is, JSON-escaped, repr-escaped."""
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secret: str | None) -> str:
    """``text`` with every form of ``secret`` replaced by ``***`` (any length of secret)."""
    if not secret:
        return text
    for form in _forms(secret):
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_bytes(content: bytes, secret: str | None) -> bytes:
    """``content`` with every form of ``secret`` replaced, before any cut could split it."""
    if not secret:
        return content
    for form in _forms(secret):
        encoded = form.encode()
        if encoded in content:
            content = content.replace(encoded, MASK.encode())
    return content


def snippet(text: str, secret: str | None, limit: int = 120) -> str:
    """The start of ``text`` for an error message, redacted before it is cut."""
    extra = max(map(len, _forms(secret))) if secret else 0
    return redact(text[: limit + extra], secret)[:limit]


def safe_text(exc: BaseException, secret: str | None) -> str:
    """``str(exc)`` (or its type's name when empty), redacted."""
    return redact(str(exc) or type(exc).__name__, secret)


def _redact_value(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, bytes | bytearray):
        return redact_bytes(bytes(value), secret)
    if isinstance(value, tuple | list):
        return type(value)(_redact_value(item, secret) for item in value)
    if isinstance(value, dict):
        return {k: _redact_value(v, secret) for k, v in value.items()}
    if isinstance(value, BaseException):
        return value
    text = repr(value)
    return redact(text, secret) if any(form in text for form in _forms(secret)) else value


def scrub_chain(exc: BaseException, secret: str | None) -> None:
    """Redact ``secret`` in the arguments of ``exc``, its causes, contexts and group members."""
    if not secret:
        return
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(Exception):  # (an exception type whose args are fixed)
            current.args = tuple(_redact_value(arg, secret) for arg in current.args)
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            current.__notes__ = [redact(str(note), secret) for note in notes]
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


class SecretLogFilter(logging.Filter):
    """Redacts the tokens of live models from every record of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}
        self._installed = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def register(self, owner: object, secret: str | None) -> None:
        """Redact ``secret`` for as long as ``owner`` lives; attach to the loggers if needed."""
        if not secret:
            return
        with self._lock:
            self._secrets[secret] = self._secrets.get(secret, 0) + 1
            if not self._installed:
                for name in HTTP_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True
        weakref.finalize(owner, self._release, secret)

    def _release(self, secret: str) -> None:
        with self._lock:
            count = self._secrets.get(secret, 0) - 1
            if count > 0:
                self._secrets[secret] = count
            else:
                self._secrets.pop(secret, None)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: show it raw
            message = f"{record.msg!r} {record.args!r}"
        cleaned = message
        for secret in secrets:
            cleaned = redact(cleaned, secret)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            for secret in secrets:
                scrub_chain(record.exc_info[1], secret)
        if record.exc_text:
            for secret in secrets:
                record.exc_text = redact(record.exc_text, secret)
        return True


HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
"""The loggers of the HTTP stack (a filter on a parent logger does not see its children's records)."""

LOG_FILTER = SecretLogFilter()
