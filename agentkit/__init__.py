"""agentkit: tool-calling agents for Cloudflare Workers AI, built for small models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._scope import session_affinity
from .agent import (
    Agent,
    AgentEvent,
    RunFinished,
    RunResult,
    StepFinished,
    ToolCallFinished,
    ToolCallStarted,
)
from .errors import (
    AgentKitError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    HookError,
    MaxStepsExceeded,
    MissingCredentialsError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    NotFoundError,
    OutputValidationError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RepeatedToolCallsError,
    RequestTooLargeError,
    RunError,
    ServerError,
    SessionBusyError,
    StreamTruncatedError,
    ToolApprovalDenied,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolRetriesExceeded,
    ToolTimeoutError,
    UnknownToolError,
    UsageLimitExceeded,
)
from .hooks import Hooks, RunInfo
from .messages import (
    Message,
    ModelEvent,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from .models import Model
from .sessions import MemorySession, Session, SQLiteSession
from .settings import ModelSettings
from .tools import Tool, ToolContext, to_content, tool

if TYPE_CHECKING:
    from .models import OpenAICompatible, RateLimit, WorkersAI
    from .tracing import instrument, uninstrument

__version__ = "0.2.0"

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentKitError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "HookError",
    "Hooks",
    "MaxStepsExceeded",
    "MemorySession",
    "Message",
    "MissingCredentialsError",
    "Model",
    "ModelConnectionError",
    "ModelError",
    "ModelEvent",
    "ModelHTTPError",
    "ModelResponse",
    "ModelResponseError",
    "ModelSettings",
    "ModelTimeoutError",
    "NotFoundError",
    "OpenAICompatible",
    "OutputValidationError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimit",
    "RateLimitError",
    "RepeatedToolCallsError",
    "RequestTooLargeError",
    "ResponseDone",
    "RunError",
    "RunFinished",
    "RunInfo",
    "RunResult",
    "SQLiteSession",
    "ServerError",
    "Session",
    "SessionBusyError",
    "StepFinished",
    "StreamTruncatedError",
    "TextDelta",
    "Tool",
    "ToolApprovalDenied",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolContext",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolResult",
    "ToolRetriesExceeded",
    "ToolTimeoutError",
    "UnknownToolError",
    "Usage",
    "UsageLimitExceeded",
    "WorkersAI",
    "__version__",
    "instrument",
    "session_affinity",
    "to_content",
    "tool",
    "uninstrument",
]


def __getattr__(name: str) -> Any:
    # The model backends (and with them httpx) load on first use: ``import agentkit`` stays fast.
    if name in ("OpenAICompatible", "RateLimit", "WorkersAI"):
        from . import models

        value = getattr(models, name)
        globals()[name] = value
        return value
    if name in ("instrument", "uninstrument"):
        # Tracing imports OpenTelemetry: only when it is switched on.
        from . import tracing

        value = getattr(tracing, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
