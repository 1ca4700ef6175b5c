"""What durable runs store: plain JSON for responses, tool results, errors and results.

Nothing here is pickled: a record written by one agentkit version can be read by another, and
reading a database never runs code from it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import errors as _errors
from ..errors import AgentKitError, ConfigurationError, RunError
from ..messages import Message, ModelResponse, Usage

__all__ = [
    "call_id",
    "check_json",
    "error_from_json",
    "error_to_json",
    "messages_from_json",
    "messages_to_json",
    "response_from_json",
    "response_to_json",
]

# Attributes of agentkit's errors worth keeping (all JSON values).
_ERROR_FIELDS = ("tool_name", "status", "code", "detail", "retry_after", "timeout", "available")


class ReplayedError(Exception):
    """Stands in for the original exception of a recorded tool failure (``.original``)."""


def call_id(run_id: str, step: int, index: int) -> str:
    """The id of the ``index``-th tool call of model request ``step`` in run ``run_id``.

    Derived, not random: the same run id replayed (in any database) gives the same ids.
    """
    digest = hashlib.sha256(f"{run_id}\x00{step}\x00{index}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def check_json(value: Any, what: str) -> None:
    """Raise a clear error unless ``value`` is JSON data (it is stored with the run)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{what} of a durable run is stored with the run, so it must be JSON data "
            f"(dict, list, str, number, bool, None); got {type(value).__name__} ({exc})"
        ) from None


def response_to_json(response: ModelResponse) -> dict[str, Any]:
    # ``raw`` (the provider's decoded reply) is left out: it may be large, and nothing reads it.
    return response.model_dump(mode="json", exclude={"raw"})


def response_from_json(data: dict[str, Any]) -> ModelResponse:
    return ModelResponse.model_validate(data)


def messages_to_json(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_defaults=True) for m in messages]


def messages_from_json(data: list[dict[str, Any]]) -> list[Message]:
    return [Message.model_validate(m) for m in data]


def error_to_json(exc: BaseException) -> dict[str, Any]:
    """An exception as JSON: its class name, message and the agentkit fields it carries."""
    fields: dict[str, Any] = {}
    for name in _ERROR_FIELDS:
        value = getattr(exc, name, None)
        if value is not None and isinstance(value, str | int | float | bool | list):
            fields[name] = value
    message = exc.message if isinstance(exc, AgentKitError) else str(exc)
    return {"type": type(exc).__name__, "message": message, "fields": fields}


def error_from_json(data: dict[str, Any]) -> AgentKitError:
    """The agentkit error :func:`error_to_json` recorded (a :class:`RunError` for others)."""
    name = str(data.get("type", ""))
    message = str(data.get("message", ""))
    cls = getattr(_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, AgentKitError)):
        return RunError(f"{name}: {message}")
    error = cls.__new__(cls)
    AgentKitError.__init__(error, message)
    # The attributes each class's __init__ would set, then the recorded values over them.
    defaults: dict[str, Any] = {}
    if isinstance(error, _errors.ToolError | _errors.ToolRetriesExceeded):
        defaults["tool_name"] = None
    if isinstance(error, _errors.ModelHTTPError):
        defaults.update(status=0, code=None, detail="", retry_after=None)
    if isinstance(error, _errors.ToolTimeoutError):
        defaults["timeout"] = 0.0
    if isinstance(error, _errors.UnknownToolError):
        defaults["available"] = []
    if isinstance(error, _errors.ToolArgumentsError):
        defaults["errors"] = []
    fields = data.get("fields")
    if isinstance(fields, dict):
        defaults.update({k: v for k, v in fields.items() if k in _ERROR_FIELDS})
    for key, value in defaults.items():
        setattr(error, key, value)
    if isinstance(error, _errors.ToolExecutionError):
        error.original = ReplayedError(message)
    return error


def usage_to_json(usage: Usage) -> dict[str, int]:
    return usage.model_dump()
