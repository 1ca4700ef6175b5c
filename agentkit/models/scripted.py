"""Offline models for tests and demos: replies given in advance, or computed by a function.

Both implement :class:`~agentkit.models.Model`, streaming included, and need no network.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import AgentKitError
from ..messages import (
    Message,
    ModelEvent,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ToolCall,
    Usage,
)
from ..settings import ModelSettings

if TYPE_CHECKING:
    from ..tools import Tool

__all__ = [
    "FunctionModel",
    "Reply",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedRequest",
    "to_response",
]

Reply: TypeAlias = "ModelResponse | str | ToolCall | Sequence[ToolCall] | BaseException"
"""One scripted reply: a response, a text answer, tool call(s), or an exception to raise."""


class ScriptExhaustedError(AgentKitError, AssertionError):
    """A :class:`ScriptedModel` was asked for more replies than it was given."""


@dataclass(frozen=True, slots=True)
class ScriptedRequest:
    """One request an offline model received (``messages`` is a snapshot of that moment)."""

    messages: list[Message]
    tools: list[Tool]
    settings: ModelSettings | None

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools offered in this request."""
        return [t.name for t in self.tools]

    @property
    def last(self) -> Message:
        """The last message the model saw."""
        return self.messages[-1]


def to_response(reply: ModelResponse | str | ToolCall | Sequence[ToolCall]) -> ModelResponse:
    """A :class:`ModelResponse` from any scripted reply (text, one call, or a list of calls)."""
    if isinstance(reply, ModelResponse):
        return reply
    if isinstance(reply, str):
        return _response(reply, [], "stop")
    if isinstance(reply, ToolCall):
        return _response(None, [reply], "tool_calls")
    calls = list(reply)
    if not calls or not all(isinstance(c, ToolCall) for c in calls):
        raise TypeError(
            "a scripted reply must be a ModelResponse, a str, a ToolCall, a non-empty list of "
            f"ToolCall, or an exception to raise; got {reply!r}"
        )
    return _response(None, calls, "tool_calls")


def _response(text: str | None, calls: list[ToolCall], finish: str) -> ModelResponse:
    # Every field given: the quickest way to build a pydantic model here.
    return ModelResponse(
        text=text,
        tool_calls=calls,
        usage=Usage(),
        finish_reason=finish,
        model_name=None,
        raw=None,
    )


def _deltas(text: str, pieces: int = 3) -> list[str]:
    """``text`` cut into a few pieces at spaces, as a server would stream it."""
    if len(text) < 8:
        return [text] if text else []
    size = max(1, len(text) // pieces)
    out: list[str] = []
    start = 0
    while start < len(text):
        end = text.find(" ", start + size)
        end = len(text) if end == -1 else end
        out.append(text[start:end])
        start = end
    return out


async def _stream(response: ModelResponse) -> AsyncIterator[ModelEvent]:
    for piece in _deltas(response.text or ""):
        yield TextDelta(piece)
    yield ResponseDone(response)


class ScriptedModel:
    """A model that plays replies given in advance, in order, and records every request.

    Each reply is a :class:`ModelResponse`, a ``str`` (a text answer), a :class:`ToolCall` or a
    list of them (a tool step), or an exception instance to raise from that request.
    ``requests`` holds every request received; asking for more replies than were given raises
    :class:`ScriptExhaustedError`.

    Example::

        model = ScriptedModel([ToolCall(name="add", arguments={"a": 1, "b": 2}), "3"])
    """

    def __init__(self, replies: Iterable[Reply], *, model_name: str = "scripted") -> None:
        self.replies: list[Reply] = list(replies)
        self.requests: list[ScriptedRequest] = []
        self._name = model_name

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def remaining(self) -> int:
        """How many replies have not been used yet."""
        return len(self.replies) - len(self.requests)

    def _next(
        self, messages: Sequence[Message], tools: Sequence[Tool], settings: ModelSettings | None
    ) -> ModelResponse:
        index = len(self.requests)
        self.requests.append(ScriptedRequest(list(messages), list(tools), settings))
        if index >= len(self.replies):
            last = messages[-1] if messages else None
            seen = f"; the last message was {last.role}: {last.content[:200]!r}" if last else ""
            raise ScriptExhaustedError(
                f"ScriptedModel was given {len(self.replies)} replies and got request "
                f"{index + 1}{seen}. Add a reply for this request, or check why the agent asked "
                "again."
            )
        reply = self.replies[index]
        if isinstance(reply, BaseException):
            raise reply
        return to_response(reply)

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        return self._next(messages, tools, settings)

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        return _stream(self._next(messages, tools, settings))


ReplyFunction = Callable[
    [list[Message], list["Tool"]],
    "ModelResponse | str | ToolCall | Sequence[ToolCall] | Awaitable[ModelResponse | str | ToolCall | Sequence[ToolCall]]",
]


class FunctionModel:
    """A model whose every reply is computed by ``fn(messages, tools)``, sync or async.

    ``fn`` returns what a :class:`ScriptedModel` reply may be (a response, text, tool call(s))
    or raises. ``requests`` records each request unless ``record=False`` (for long benchmarks).

    Example::

        def reply(messages, tools):
            if messages[-1].role == "tool":
                return f"The answer is {messages[-1].content}."
            return ToolCall(name="add", arguments={"a": 2, "b": 3})

        model = FunctionModel(reply)
    """

    def __init__(
        self, fn: ReplyFunction, *, model_name: str = "function", record: bool = True
    ) -> None:
        self.fn = fn
        self.requests: list[ScriptedRequest] = []
        self._record = record
        self._name = model_name

    @property
    def model_name(self) -> str:
        return self._name

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        messages = messages if isinstance(messages, list) else list(messages)
        tool_list = tools if isinstance(tools, list) else list(tools)
        if self._record:
            self.requests.append(ScriptedRequest(list(messages), tool_list, settings))
        reply: Any = self.fn(messages, tool_list)
        if inspect.isawaitable(reply):
            reply = await reply
        return to_response(reply)

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        async def events() -> AsyncIterator[ModelEvent]:
            response = await self.request(messages, tools, settings)
            async for event in _stream(response):
                yield event

        return events()
