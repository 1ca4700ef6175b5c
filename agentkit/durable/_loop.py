"""The agent loop with its side effects as DBOS steps, and what runs it in this process.

:class:`DurableLoop` is a copy of an :class:`~agentkit.Agent` (same settings, same tools) whose
``_request``, ``_stream_step``, ``_run_tool`` and ``_approved`` seams record each model
request, tool call and approval as a step, and whose tool-call ids come from the run id. The
live events of a run reach a caller in this process through :func:`emit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

from dbos import DBOS, StepReservation

from ..agent import Agent, AgentEvent, OutputT, _Run
from ..errors import AgentKitError, ConfigurationError, ToolError, ToolExecutionError
from ..messages import ModelResponse, TextDelta, ToolCall, ToolResult, Usage
from ..settings import ModelSettings
from ..tools import Tool, ToolContext
from ._codec import call_id, error_from_json, error_to_json, response_from_json, response_to_json

__all__ = [
    "APPROVAL_STEP",
    "REQUEST_STEP",
    "TOOL_STEP",
    "Listener",
    "admitted",
    "durable_copy",
    "emit",
    "listeners",
    "listeners_lock",
    "running_here",
    "set_local_concurrency",
]

REQUEST_STEP = "agentkit.model_request"
TOOL_STEP = "agentkit.tool."
APPROVAL_STEP = "agentkit.approval."

# Runs executing in this process, and the most that may (``set_local_concurrency``).
_running = 0
_local_limit: int | None = None
_gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def set_local_concurrency(limit: int | None) -> None:
    """At most ``limit`` durable runs execute at once in this process (``None``: no limit)."""
    global _local_limit
    if limit is not None and limit < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {limit}")
    _local_limit = limit
    _gates.clear()


def running_here() -> int:
    """How many durable runs are executing in this process now."""
    return _running


@contextlib.asynccontextmanager
async def admitted() -> AsyncIterator[None]:
    global _running
    _running += 1
    try:
        if _local_limit is None:
            yield
        else:
            loop = asyncio.get_running_loop()
            gate = _gates.get(loop)
            if gate is None:
                gate = _gates[loop] = asyncio.Semaphore(_local_limit)
            async with gate:
                yield
    finally:
        _running -= 1


# The step ids reserved for the tool call running in this task: (approval, tool).
_reserved: contextvars.ContextVar[tuple[StepReservation | None, StepReservation | None]] = (
    contextvars.ContextVar("agentkit_durable_reserved", default=(None, None))
)

# --- live events of a run, for a caller in this process -----------------------------------------


class Listener:
    """Events of one run for the caller streaming it (the run may execute on another thread)."""

    __slots__ = ("loop", "queue")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[AgentEvent] = asyncio.Queue()

    def emit(self, event: AgentEvent) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(event)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


listeners: dict[str, Listener] = {}
listeners_lock = threading.Lock()


def emit(run_id: str, event: AgentEvent) -> None:
    listener = listeners.get(run_id)
    if listener is not None:
        listener.emit(event)


# --- the loop, with its side effects as steps ----------------------------------------------------


async def _step(reservation: StepReservation | None, name: str, fn: Any) -> dict[str, Any]:
    options: Any = {"name": name}  # no DBOS retries: agentkit's own run inside the step
    if reservation is not None:
        return cast(dict[str, Any], await reservation.run_async(options, fn))
    return cast(dict[str, Any], await DBOS.run_step_async(options, fn))


def _response(data: dict[str, Any]) -> ModelResponse:
    if "error" in data:
        raise error_from_json(data["error"])
    return response_from_json(data["response"])


class DurableLoop(Agent[Any]):
    """An agent whose model requests, tool calls and approvals are DBOS steps."""

    async def _request(
        self, run: _Run, tools: Sequence[Tool], settings: ModelSettings | None
    ) -> ModelResponse:
        model = self.model

        async def request() -> dict[str, Any]:
            try:
                response = await model.request(run.sent(), tools, settings)
            except AgentKitError as exc:  # after agentkit's retries: recorded, never retried
                return {"error": error_to_json(exc)}
            return {"response": response_to_json(response)}

        return _response(await _step(None, REQUEST_STEP, request))

    async def _stream_step(
        self, tools: Sequence[Tool], run: _Run, settings: ModelSettings | None
    ) -> AsyncGenerator[TextDelta | ModelResponse, None]:
        stream = super()._stream_step
        run_id = run.run_id

        async def request() -> dict[str, Any]:
            response: ModelResponse | None = None
            try:
                async for event in stream(tools, run, settings):
                    if isinstance(event, ModelResponse):
                        response = event
                    else:  # deltas go to the caller now; a replayed step has none
                        emit(run_id, event)
            except AgentKitError as exc:
                return {"error": error_to_json(exc)}
            assert response is not None
            return {"response": response_to_json(response)}

        yield _response(await _step(None, REQUEST_STEP, request))

    def _unique(self, run: _Run, calls: list[ToolCall]) -> list[ToolCall]:
        # Ids from the run id, not from the model (which may repeat them or leave them out) nor
        # from a random source: a replay in any database gives the same transcript.
        out = [
            call.model_copy(update={"id": call_id(run.run_id, run.steps, i)})
            for i, call in enumerate(calls)
        ]
        run.seen_ids.update(call.id for call in out)
        return out

    async def _call_tool(self, run: _Run, call: ToolCall) -> ToolResult:
        # Reserve this call's step ids before anything awaits: parallel calls start in call
        # order, so their steps are numbered in call order however they finish.
        tool = self._tools.get(call.name)
        approval = tool_step = None
        if tool is not None:
            if tool.requires_approval or self.approve_all:
                approval = DBOS.reserve_step()
            tool_step = DBOS.reserve_step()
        token = _reserved.set((approval, tool_step))
        try:
            return await super()._call_tool(run, call)
        finally:
            _reserved.reset(token)

    async def _approved(self, call: ToolCall) -> bool:
        approved = super()._approved

        async def ask() -> dict[str, Any]:
            return {"approved": await approved(call)}

        data = await _step(_reserved.get()[0], APPROVAL_STEP + call.name, ask)
        return bool(data["approved"])

    async def _run_tool(self, tool: Tool, call: ToolCall, context: ToolContext[Any]) -> ToolResult:
        async def run_tool() -> dict[str, Any]:
            try:
                result = await tool.run(call.arguments, context)
            except ToolError as exc:
                error = error_to_json(exc)
                original = getattr(exc, "original", None)
                if original is not None and not isinstance(original, Exception):
                    error["interrupted"] = True  # KeyboardInterrupt, SystemExit: ends the run
                return {"error": error, "usage": context.usage.model_dump()}
            return {"content": result.content, "usage": context.usage.model_dump()}

        data = await _step(_reserved.get()[1], TOOL_STEP + call.name, run_tool)
        context.usage = Usage.model_validate(data["usage"])  # nested runs' usage, also replayed
        if "error" in data:
            error = error_from_json(data["error"])
            if data["error"].get("interrupted") and isinstance(error, ToolExecutionError):
                error.original = SystemExit(error.message)  # replayed: it ends the run again
            raise error
        return ToolResult(
            content=data["content"],
            value=None,
            is_error=False,
            tool_call_id=call.id,
            name=tool.name,
        )


_loop_classes: dict[type[Agent[Any]], type[Agent[Any]]] = {Agent: DurableLoop}


def durable_copy(agent: Agent[OutputT]) -> Agent[OutputT]:
    """A copy of ``agent`` (same settings, same tools) whose loop records its steps."""
    cls = type(agent)
    loop_cls = _loop_classes.get(cls)
    if loop_cls is None:
        loop_cls = _loop_classes[cls] = type(f"Durable{cls.__name__}", (DurableLoop, cls), {})
    copy = object.__new__(loop_cls)
    copy.__dict__.update(agent.__dict__)
    return cast(Agent[OutputT], copy)
