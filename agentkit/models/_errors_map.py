"""Failed replies mapped to the :mod:`agentkit.errors` tree, with the provider's code and text
and what to do; ``retry-after`` parsing."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._json import JSONNestingError, loads
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ModelHTTPError,
    ModelResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
)
from ._redact import Secrets, redact, redact_bytes, snippet

__all__ = [
    "QUOTA_CODES",
    "TIMEOUT_CODES",
    "Hints",
    "error_from_response",
    "parse_retry_after",
    "unreadable",
]

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


@dataclass(frozen=True, slots=True)
class Hints:
    """What to tell users for each failure, per provider."""

    provider: str = "server"
    auth: str = "Check the API key."
    permission: str = "The key lacks permission for this model or route."
    not_found: str = "Check the base URL and the model name."


def _parse_error_body(content: bytes) -> tuple[int | str | None, str]:
    try:
        data = loads(content)
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
    secret: Secrets = None,
) -> ModelHTTPError:
    """The :class:`ModelHTTPError` subclass for a failed reply, with a message that says what to do."""
    content = redact_bytes(content, secret)  # before any cut could split it
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


def unreadable(
    model: str,
    content_type: str | None,
    content: bytes,
    secret: Secrets = None,
    problem: ValueError | None = None,
) -> ModelResponseError:
    """The error for a reply that is not JSON (``problem``: the parser's error, if any)."""
    start = snippet(content[:4096].decode("utf-8", "replace"), secret)
    if isinstance(problem, JSONNestingError):
        return ModelResponseError(
            f"{model}: the reply nests JSON arrays or objects too deeply to read ({len(content)} "
            f"bytes, starting {start!r}); no model answer does that: the server misbehaves."
        )
    return ModelResponseError(
        f"{model}: the reply is not valid JSON (content type {content_type or 'missing'!s}, "
        f"{len(content)} bytes, starting {start!r}). The URL may point at something that is "
        "not a model server, or a proxy answered instead; check base_url."
    )
