"""The API token every reliability test uses, and a scanner that says where it leaked.

The token is distinctive so that a leak cannot be mistaken for anything else; the suite's
``conftest.py`` captures every ``agentkit`` log record at DEBUG and fails a test whose records
contain it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any

SECRET_TOKEN = "sk-test-SECRET-0123456789abcdef"


def record_texts(record: logging.LogRecord) -> list[str]:
    """Every text a log record can show: the message, its arguments, traceback and stack."""
    texts = [str(record.msg)]
    try:
        texts.append(record.getMessage())
    except Exception as exc:  # a record whose arguments do not fit its format
        texts.append(f"<unformattable record: {exc!r}>")
    if record.args:
        texts.append(repr(record.args))
    if record.exc_info and record.exc_info[1] is not None:
        texts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        texts.append(record.exc_text)
    if record.stack_info:
        texts.append(record.stack_info)
    return texts


def exception_texts(exc: BaseException) -> list[str]:
    """``str``, ``repr``, the formatted traceback (causes included) and the carried transcript."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for message in getattr(exc, "messages", None) or []:
        texts.append(message.model_dump_json())
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str):
        texts.append(detail)
    # What an error tracker may read off the chain: the request a low-level error carries.
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        request = getattr(current, "_request", None)
        if request is not None:
            texts.append(str(list(request.headers.raw)))
        pending += [current.__cause__, current.__context__]
    return texts


def leaks(texts: Iterable[Any], secret: str = SECRET_TOKEN) -> list[str]:
    """The texts (shortened) that contain ``secret``."""
    return [str(text)[:300] for text in texts if secret in str(text)]
