"""The data that flows through an agent: messages, tool calls, tool results, usage, responses.

Nothing here knows a wire format; each model backend translates these at its edge.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FinishReason",
    "Message",
    "ModelEvent",
    "ModelResponse",
    "ResponseDone",
    "Role",
    "TextDelta",
    "ToolCall",
    "ToolResult",
    "Usage",
    "new_call_id",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "tool_calls", "length", "error"] | str


def new_call_id() -> str:
    """A fresh tool-call id, unique for all practical purposes (``call_`` + 24 hex digits)."""
    return "call_" + secrets.token_hex(12)


class ToolCall(BaseModel):
    """A request from the model to run one tool.

    ``arguments_error`` is set when the arguments the model sent could not be read (not JSON,
    nested too deeply, too long); ``arguments`` is then empty, and the agent answers the call
    with this text as an error instead of running the tool.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None


class ToolResult(BaseModel):
    """What one tool call produced.

    ``content`` is the text the model will see. ``value`` is the Python value the tool returned
    (not serialised into transcripts). ``is_error`` marks a result that reports a failure.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    content: str
    value: Any = Field(default=None, exclude=True, repr=False)
    is_error: bool = False
    tool_call_id: str | None = None
    name: str | None = None


class Message(BaseModel):
    """One turn of a conversation.

    - ``system`` / ``user``: ``content`` only.
    - ``assistant``: ``content`` (may be empty) and, for a tool step, ``tool_calls``.
    - ``tool``: the result of one call: ``content``, ``tool_call_id``, ``name``, ``is_error``.
    """

    model_config = ConfigDict(defer_build=True)

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("image" in data or "images" in data):
            raise ValueError(
                "a message cannot carry an image: the models agentkit speaks to "
                "(@cf/meta/llama-3.2-3b-instruct first) read text only; describe the image "
                "in the message text instead"
            )
        return data

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(
        cls, content: str | None = "", tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls(role="assistant", content=content or "", tool_calls=list(tool_calls or []))

    @classmethod
    def tool(cls, result: ToolResult, *, call: ToolCall | None = None) -> Message:
        return cls(
            role="tool",
            content=result.content,
            tool_call_id=call.id if call is not None else result.tool_call_id,
            name=call.name if call is not None else result.name,
            is_error=result.is_error,
        )


class Usage(BaseModel):
    """What requests used. Adding two ``Usage`` values sums every field.

    ``cached_tokens`` is the part of ``prompt_tokens`` the provider served from its prompt cache
    (billed at a discount), where it reports it.
    """

    model_config = ConfigDict(defer_build=True)

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tool_calls: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            tool_calls=self.tool_calls + other.tool_calls,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class ModelResponse(BaseModel):
    """One reply from a model.

    A non-empty ``tool_calls`` means a tool step, whatever ``finish_reason`` says (Workers AI
    may say ``stop`` with tool calls present). ``finish_reason="length"`` means the answer was
    cut by ``max_tokens``. ``raw`` is the provider's decoded result, for inspection.
    """

    model_config = ConfigDict(defer_build=True)

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: FinishReason | None = None
    model_name: str | None = None
    raw: Any = Field(default=None, repr=False)


# --- streaming events from a model ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of text as the model produced it."""

    text: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The last event of a model stream: the whole response, tool calls assembled."""

    response: ModelResponse


ModelEvent = TextDelta | ResponseDone
