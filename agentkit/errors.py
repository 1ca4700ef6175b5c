"""One exception tree for everything agentkit raises, rooted at :class:`AgentKitError`.

Layout::

    AgentKitError
    ├── ConfigurationError            bad settings, missing credentials (also a ValueError)
    │   └── MissingCredentialsError
    ├── ToolDefinitionError           a function that cannot become a tool (also a TypeError)
    ├── HookError                     a hook raised (the hook's exception in ``.original``)
    ├── ToolError                     one tool call went wrong; the agent reports it to the model
    │   ├── ToolArgumentsError        arguments failed validation
    │   ├── UnknownToolError          the model named a tool that does not exist
    │   ├── ToolExecutionError        the tool function raised (original in ``.original``)
    │   ├── ToolTimeoutError          the tool ran past its timeout
    │   └── ToolApprovalDenied        an approval callback refused the call
    ├── ModelError                    talking to the model failed
    │   ├── ModelHTTPError            the server answered with an error status
    │   │   ├── BadRequestError (400) / AuthenticationError (401) / PermissionDeniedError (403)
    │   │   ├── NotFoundError (404) / RequestTooLargeError (413)
    │   │   ├── RateLimitError (429)
    │   │   │   └── QuotaExceededError    the daily allocation is used up: not retried
    │   │   └── ServerError (5xx)
    │   ├── ModelTimeoutError
    │   ├── ModelConnectionError
    │   ├── ModelResponseError        a reply that cannot be read (invalid JSON, wrong type)
    │   └── StreamTruncatedError      a stream that ended before ``[DONE]``
    ├── RunError                      an agent run stopped before a final answer
    │   ├── MaxStepsExceeded
    │   ├── UsageLimitExceeded
    │   ├── ToolRetriesExceeded
    │   └── OutputValidationError
    └── SessionBusyError              another run is using the same session right now

Every error raised out of an agent run carries ``.messages`` (the whole transcript) and
``.usage`` (what the run used), whatever its class: a failed run loses nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .messages import Message, Usage

__all__ = [
    "JOB_FATAL_ERRORS",
    "AgentKitError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "HookError",
    "MaxStepsExceeded",
    "MissingCredentialsError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelResponseError",
    "ModelTimeoutError",
    "NotFoundError",
    "OutputValidationError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RepeatedToolCallsError",
    "RequestTooLargeError",
    "RunError",
    "ServerError",
    "SessionBusyError",
    "StreamTruncatedError",
    "ToolApprovalDenied",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolRetriesExceeded",
    "ToolTimeoutError",
    "UnknownToolError",
    "UsageLimitExceeded",
]


class AgentKitError(Exception):
    """Base class of every error agentkit raises.

    ``messages`` and ``usage`` are filled in by the agent when the error leaves a run, so the
    transcript of a failed run is never lost. Outside a run they stay empty / ``None``.
    """

    messages: list[Message]
    usage: Usage | None

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.messages = []
        self.usage = None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- configuration -------------------------------------------------------------------------


class ConfigurationError(AgentKitError, ValueError):
    """A setting or argument is invalid (out of range, wrong type, contradictory)."""


class MissingCredentialsError(ConfigurationError):
    """Credentials needed to reach a model were not given and not found in the environment."""


class ToolDefinitionError(AgentKitError, TypeError):
    """A function cannot be turned into a tool (missing annotation, unsupported type, ...)."""


# --- tool calls ------------------------------------------------------------------------------


class HookError(AgentKitError):
    """A hook method raised; the run stops with this error (``.hook`` names the method)."""

    def __init__(self, message: str, *, hook: str, original: BaseException) -> None:
        super().__init__(message)
        self.hook = hook
        self.original = original


class ToolError(AgentKitError):
    """One tool call failed. The agent turns these into a tool message the model can act on."""

    def __init__(self, message: str, *, tool_name: str | None = None) -> None:
        super().__init__(message)
        self.tool_name = tool_name


class ToolArgumentsError(ToolError):
    """The arguments for a tool call failed validation.

    ``errors`` lists one dict per problem: ``{"field", "expected", "got", "message"}``.
    ``str(error)`` is written for the model to read and correct its call.
    """

    def __init__(
        self,
        message: str,
        *,
        tool_name: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, tool_name=tool_name)
        self.errors: list[dict[str, Any]] = list(errors or [])


class UnknownToolError(ToolError):
    """The model asked for a tool that is not offered."""

    def __init__(self, message: str, *, tool_name: str | None = None, available: list[str]) -> None:
        super().__init__(message, tool_name=tool_name)
        self.available = available


class ToolExecutionError(ToolError):
    """The tool function raised. The original exception is ``.original`` (and ``__cause__``)."""

    def __init__(
        self, message: str, *, tool_name: str | None = None, original: BaseException
    ) -> None:
        super().__init__(message, tool_name=tool_name)
        self.original = original


class ToolTimeoutError(ToolError):
    """The tool did not finish within its timeout."""

    def __init__(self, message: str, *, tool_name: str | None = None, timeout: float) -> None:
        super().__init__(message, tool_name=tool_name)
        self.timeout = timeout


class ToolApprovalDenied(ToolError):
    """The approval callback refused a call to a tool marked ``requires_approval``."""


# --- the model -------------------------------------------------------------------------------


class ModelError(AgentKitError):
    """Talking to the model failed."""


class ModelHTTPError(ModelError):
    """The model server answered with an error status.

    ``status`` is the HTTP status, ``code`` the provider's error code (Cloudflare's numeric code,
    or ``None``), ``detail`` the provider's error text.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | str | None = None,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class BadRequestError(ModelHTTPError):
    """400: the request was rejected as invalid. Not retried."""


class AuthenticationError(ModelHTTPError):
    """401: the API token is missing, wrong or expired. Not retried."""


class PermissionDeniedError(ModelHTTPError):
    """403: the token lacks the permission (Workers AI: Read and Edit). Not retried."""


class NotFoundError(ModelHTTPError):
    """404: no such account, model or route. Not retried."""


class RequestTooLargeError(ModelHTTPError):
    """413: the request body is too large for the model. Not retried."""


class RateLimitError(ModelHTTPError):
    """429: too many requests or no capacity right now. Retried with backoff."""


class QuotaExceededError(RateLimitError):
    """429 with a daily-quota code (3036, 4006): it will not clear soon, so it is not retried."""


class ServerError(ModelHTTPError):
    """5xx: the server failed. Retried with backoff."""


class ModelTimeoutError(ModelError):
    """The model did not answer within the client's timeout."""


class ModelConnectionError(ModelError):
    """The connection to the model server failed or was dropped."""


class ModelResponseError(ModelError):
    """The server's reply could not be read: invalid JSON, a wrong content type or shape."""


class StreamTruncatedError(ModelError):
    """A streamed reply ended before its ``[DONE]`` marker."""


# --- agent runs ------------------------------------------------------------------------------


class RunError(AgentKitError):
    """An agent run stopped before reaching a final answer."""


class MaxStepsExceeded(RunError):
    """The run used its ``max_steps`` model requests without a final answer."""


class UsageLimitExceeded(RunError):
    """The run went over a usage limit (``max_total_tokens``)."""


class RepeatedToolCallsError(RunError):
    """The model kept repeating tool calls it already had the results of (``max_repeats``)."""


class ToolRetriesExceeded(RunError):
    """A tool's calls failed more often than its ``max_retries`` budget allows."""

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name


class OutputValidationError(RunError):
    """The final answer could not be parsed into ``output_type`` within the retry budget."""


class SessionBusyError(AgentKitError):
    """Another run holds the session: two runs on one conversation are refused, not interleaved.

    ``holder`` describes who holds it (run id, process id, host), for the message and for logs.
    """

    def __init__(self, message: str, *, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


#: Errors that no retry and no other input will cure (bad credentials or permissions, no such
#: model, the daily quota used up, a bad setting): a job over many inputs (a batch, a long
#: summary) stops at the first one instead of failing every input the same way.
JOB_FATAL_ERRORS: tuple[type[AgentKitError], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    QuotaExceededError,
    ConfigurationError,
)
