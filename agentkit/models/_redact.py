"""Secrets (API tokens): checked when they are read, and kept out of every text agentkit makes.

- :func:`clean_token` strips the whitespace a token read from a file or a secret store carries
  (a trailing newline) and refuses one that cannot be sent in a header, without quoting it.
- :func:`redact` replaces every form of a token (as is, JSON-escaped, repr-escaped) by ``***``,
  whatever its length. A model's secrets are its token and the values of the headers it was given
  whose names say they carry one (:func:`header_secrets`: an AI Gateway token, say).
- :func:`scrub_chain` redacts the texts of an exception and of its ``__cause__`` /
  ``__context__`` chain, and the headers of the request an httpx error carries, so a low-level
  error kept as the cause of an agentkit error holds no token either.
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
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "LOG_FILTER",
    "SecretLogFilter",
    "Secrets",
    "clean_token",
    "header_secrets",
    "redact",
    "redact_bytes",
    "safe_text",
    "scrub_chain",
    "snippet",
]

MASK = "***"

Secrets = str | tuple[str, ...] | None
"""One secret, several, or none."""

_SENSITIVE = ("auth", "key", "token", "secret", "cookie", "password")


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


def header_secrets(headers: Mapping[str, str] | None) -> tuple[str, ...]:
    """The secrets in ``headers``: values of headers named like ``authorization`` or ``x-api-key``
    (and the credentials after a scheme such as ``Bearer``)."""
    found: list[str] = []
    for name, value in (headers or {}).items():
        if not isinstance(value, str) or not any(word in name.lower() for word in _SENSITIVE):
            continue
        value = value.strip()
        if value:
            found.append(value)
            _, _, credentials = value.partition(" ")
            if credentials.strip():
                found.append(credentials.strip())
    return tuple(found)


@functools.lru_cache(maxsize=256)
def _forms(secret: str | tuple[str, ...]) -> tuple[str, ...]:
    """The ways the secret(s) can be written into a text: as is, JSON-escaped, repr-escaped;
    longest first."""
    forms: set[str] = set()
    for one in (secret,) if isinstance(secret, str) else secret:
        if one:
            forms.update((one, json.dumps(one)[1:-1], repr(one)[1:-1]))
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secret: Secrets) -> str:
    """``text`` with every form of ``secret`` replaced by ``***`` (any length of secret)."""
    if not secret:
        return text
    for form in _forms(secret):
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_bytes(content: bytes, secret: Secrets) -> bytes:
    """``content`` with every form of ``secret`` replaced, before any cut could split it."""
    if not secret:
        return content
    for form in _forms(secret):
        encoded = form.encode()
        if encoded in content:
            content = content.replace(encoded, MASK.encode())
    return content


def snippet(text: str, secret: Secrets, limit: int = 120) -> str:
    """The start of ``text`` for an error message, redacted before it is cut."""
    extra = max(map(len, _forms(secret)), default=0) if secret else 0
    return redact(text[: limit + extra], secret)[:limit]


def safe_text(exc: BaseException, secret: Secrets) -> str:
    """``str(exc)`` (or its type's name when empty), redacted."""
    return redact(str(exc) or type(exc).__name__, secret)


def _redact_value(value: Any, secret: str | tuple[str, ...]) -> Any:
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


def scrub_chain(exc: BaseException, secret: Secrets) -> None:
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
        _scrub_request(current, secret)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def _scrub_request(exc: BaseException, secret: str | tuple[str, ...]) -> None:
    """Redact the headers of the request an httpx error carries (its ``Authorization``), for
    whatever reads the chain later (an error tracker, a debugger)."""
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # an httpx error whose request was never set
        return
    headers = getattr(request, "headers", None)
    items = getattr(headers, "multi_items", None)
    if headers is None or items is None:
        return
    with contextlib.suppress(Exception):
        for name, value in list(items()):
            if isinstance(value, str):
                cleaned = redact(value, secret)
                if cleaned != value:
                    headers[name] = cleaned


class SecretLogFilter(logging.Filter):
    """Redacts the tokens of live models from every record of the loggers it is attached to.

    Each model's transport registers its token for as long as it lives. The set the filter reads
    is an immutable tuple swapped in whole, so records logged from any thread see a consistent
    set; the lock is re-entrant because a release may run from the garbage collector.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._counts: dict[str, int] = {}
        self._active: tuple[str, ...] = ()
        self._installed = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._active

    def register(self, owner: object, secret: Secrets) -> None:
        """Redact ``secret`` for as long as ``owner`` lives; attach to the loggers if needed."""
        if not secret:
            return
        with self._lock:
            for one in (secret,) if isinstance(secret, str) else secret:
                self._counts[one] = self._counts.get(one, 0) + 1
            self._active = tuple(self._counts)
            if not self._installed:
                for name in HTTP_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True
        weakref.finalize(owner, self._release, secret)

    def _release(self, secret: str | tuple[str, ...]) -> None:
        with self._lock:
            for one in (secret,) if isinstance(secret, str) else secret:
                count = self._counts.get(one, 0) - 1
                if count > 0:
                    self._counts[one] = count
                else:
                    self._counts.pop(one, None)
            self._active = tuple(self._counts)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._active
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: show it raw
            message = f"{record.msg!r} {record.args!r}"
        cleaned = redact(message, secrets)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_chain(record.exc_info[1], secrets)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
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
