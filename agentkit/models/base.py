"""The one interface the agent uses to talk to any model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..messages import Message, ModelEvent, ModelResponse
from ..settings import ModelSettings

if TYPE_CHECKING:
    from ..tools import Tool

__all__ = ["Model"]


@runtime_checkable
class Model(Protocol):
    """A chat model that can call tools.

    ``request`` returns one whole reply. ``stream`` yields :class:`~agentkit.messages.TextDelta`
    events as text arrives and ends with exactly one :class:`~agentkit.messages.ResponseDone`
    holding the whole reply (tool calls assembled). Both raise
    :class:`~agentkit.errors.ModelError` subclasses on failure.
    """

    @property
    def model_name(self) -> str: ...

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> ModelResponse: ...

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]: ...
