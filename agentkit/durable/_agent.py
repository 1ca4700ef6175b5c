"""``DurableAgent``: the agent loop as a DBOS workflow, each model request and tool call a step.

The loop is agent.py's own: a durable agent is a copy of the agent whose side effects go
through DBOS steps (the ``_request``, ``_stream_step``, ``_run_tool`` and ``_approved`` seams of
:class:`~agentkit.agent.Agent`). What that gives, and what it does not:

- The workflow id is the run id. Running a run id again after a crash replays the steps that
  completed from the database (a finished model request is never sent again, a finished tool
  call never run again) and goes on from the first step that did not complete. That step may
  run a second time: ``ToolContext.idempotency_key`` is the same both times.
- A model request step keeps agentkit's retries and error mapping inside it; DBOS never retries
  a step, so nothing is retried twice. A request that fails for good is recorded as failed.
- Replays are deterministic: tool-call ids are derived from the run id, the step and the call's
  position, and the steps of parallel calls are numbered in call order before any of them runs.
- Everything stored is JSON. Usage is rebuilt from the recorded responses, so it survives.
- Streaming: text deltas of a request reach the caller as they arrive; a request replayed from
  the database gives no deltas, only its recorded response.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, cast

from dbos import DBOS, PortableWorkflowError, SetWorkflowID, StepReservation
from dbos import WorkflowSerializationFormat as _Format

from .._sync import run_sync
from ..agent import (
    Agent,
    AgentEvent,
    OutputT,
    RunFinished,
    RunResult,
    _Run,
)
from ..errors import AgentKitError, ConfigurationError, ToolError
from ..messages import Message, ModelResponse, TextDelta, ToolCall, ToolResult, Usage
from ..tools import Tool, ToolContext
from . import _engine
from ._codec import (
    call_id,
    check_json,
    error_from_json,
    error_to_json,
    messages_from_json,
    messages_to_json,
    response_from_json,
    response_to_json,
)

__all__ = ["DurableAgent"]

REQUEST_STEP = "agentkit.model_request"
TOOL_STEP = "agentkit.tool."
APPROVAL_STEP = "agentkit.approval."

_agents: dict[str, DurableAgent[Any]] = {}

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
async def _admitted() -> AsyncIterator[None]:
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


class _Listener:
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


_listeners: dict[str, _Listener] = {}
_listeners_lock = threading.Lock()


def _emit(run_id: str, event: AgentEvent) -> None:
    listener = _listeners.get(run_id)
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


class _DurableLoop(Agent[Any]):
    """An agent whose model requests, tool calls and approvals are DBOS steps."""

    async def _request(self, run: _Run, tools: Sequence[Tool]) -> ModelResponse:
        model, settings = self.model, self.settings

        async def request() -> dict[str, Any]:
            try:
                response = await model.request(run.messages, tools, settings)
            except AgentKitError as exc:  # after agentkit's retries: recorded, never retried
                return {"error": error_to_json(exc)}
            return {"response": response_to_json(response)}

        return _response(await _step(None, REQUEST_STEP, request))

    async def _stream_step(
        self, tools: Sequence[Tool], run: _Run
    ) -> AsyncIterator[TextDelta | ModelResponse]:
        stream = super()._stream_step
        run_id = run.run_id

        async def request() -> dict[str, Any]:
            response: ModelResponse | None = None
            try:
                async for event in stream(tools, run):
                    if isinstance(event, ModelResponse):
                        response = event
                    else:  # deltas go to the caller now; a replayed step has none
                        _emit(run_id, event)
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
                return {"error": error_to_json(exc), "usage": context.usage.model_dump()}
            return {"content": result.content, "usage": context.usage.model_dump()}

        data = await _step(_reserved.get()[1], TOOL_STEP + call.name, run_tool)
        context.usage = Usage.model_validate(data["usage"])  # nested runs' usage, also replayed
        if "error" in data:
            raise error_from_json(data["error"])
        return ToolResult(
            content=data["content"],
            value=None,
            is_error=False,
            tool_call_id=call.id,
            name=tool.name,
        )


_loop_classes: dict[type[Agent[Any]], type[Agent[Any]]] = {Agent: _DurableLoop}


def _durable_copy(agent: Agent[OutputT]) -> Agent[OutputT]:
    """A copy of ``agent`` (same settings, same tools) whose loop records its steps."""
    cls = type(agent)
    loop_cls = _loop_classes.get(cls)
    if loop_cls is None:
        loop_cls = _loop_classes[cls] = type(f"Durable{cls.__name__}", (_DurableLoop, cls), {})
    copy = object.__new__(loop_cls)
    copy.__dict__.update(agent.__dict__)
    return cast(Agent[OutputT], copy)


# --- the public face ------------------------------------------------------------------------------


class DurableAgent(Generic[OutputT]):
    """An :class:`~agentkit.Agent` whose runs survive crashes: each run is a DBOS workflow.

    Create it at module level, before :func:`agentkit.durable.launch`, as DBOS requires::

        agent = Agent(WorkersAI(), [search, save])
        durable = DurableAgent(agent)

        launch()                                    # once, at start-up
        result = await durable.run("...", run_id="order-1234")

    ``name`` identifies the agent's workflow in the database (default: ``agent.name``, else
    ``"agent"``); processes that share a database must use the same names for the same agents.
    The agent's settings and tools are taken as they are now.
    """

    def __init__(self, agent: Agent[OutputT], *, name: str | None = None) -> None:
        if not isinstance(agent, Agent):
            raise ConfigurationError(
                f"DurableAgent wraps an agentkit Agent, got {type(agent).__name__}"
            )
        _engine.require_not_launched("DurableAgent(...)")
        self.name = name or agent.name or "agent"
        if self.name in _agents:
            raise ConfigurationError(
                f"a DurableAgent named {self.name!r} already exists in this process; give each "
                "one its own name with DurableAgent(agent, name=...)"
            )
        self.agent = agent
        self._loop = _durable_copy(agent)

        async def agentkit_run(request: dict[str, Any]) -> dict[str, Any]:
            return await self._execute(request)

        self.workflow_name = f"agentkit.run.{self.name}"
        self._workflow = DBOS.workflow(
            name=self.workflow_name, serialization_type=_Format.PORTABLE
        )(agentkit_run)
        _agents[self.name] = self

    def __repr__(self) -> str:
        return f"DurableAgent({self.agent!r}, name={self.name!r})"

    # --- entry points ---------------------------------------------------------------------------

    async def run(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        max_steps: int | None = None,
    ) -> RunResult[OutputT]:
        """Run to a final answer as a durable workflow whose id is ``run_id``.

        A run id already finished gives back its recorded result (or error) without running
        anything; one left unfinished by a crash goes on from its last completed step. Without
        ``run_id`` a random one is used. ``deps`` is stored with the run, so it must be JSON.
        """
        request = self._request(prompt, message_history, deps, max_steps, stream=False)
        run_id = run_id or uuid.uuid4().hex
        handle = await self._start(run_id, request)
        return await self._result(handle)

    def run_sync(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        max_steps: int | None = None,
    ) -> RunResult[OutputT]:
        """:meth:`run` for synchronous code."""
        return run_sync(
            self.run(
                prompt,
                run_id=run_id,
                message_history=message_history,
                deps=deps,
                max_steps=max_steps,
            )
        )

    async def stream(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        max_steps: int | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The run's events as :meth:`Agent.stream <agentkit.Agent.stream>` gives them.

        Text deltas arrive live; steps replayed from the database give their tool-call and step
        events again but no text deltas. The last event is ``RunFinished``.
        """
        request = self._request(prompt, message_history, deps, max_steps, stream=True)
        run_id = run_id or uuid.uuid4().hex
        listener = _Listener()
        with _listeners_lock:
            if run_id in _listeners:
                raise ConfigurationError(f"run {run_id!r} is already being streamed here")
            _listeners[run_id] = listener
        try:
            handle = await self._start(run_id, request)
            finished = asyncio.ensure_future(self._result(handle))
            try:
                while True:
                    getter = asyncio.ensure_future(listener.queue.get())
                    await asyncio.wait({finished, getter}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        yield getter.result()
                        continue
                    getter.cancel()
                    break
                while not listener.queue.empty():
                    yield listener.queue.get_nowait()
                yield RunFinished(await finished)
            finally:
                if not finished.done():
                    finished.cancel()
        finally:
            with _listeners_lock:
                _listeners.pop(run_id, None)

    # --- inside ---------------------------------------------------------------------------------

    def _request(
        self,
        prompt: str | Message | Sequence[Message] | None,
        history: Sequence[Message] | None,
        deps: Any,
        max_steps: int | None,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        _engine.require_launched(f"DurableAgent {self.name!r}")
        check_json(deps, "deps")
        if prompt is None or isinstance(prompt, str):
            stored: Any = prompt
        else:
            stored = messages_to_json([prompt] if isinstance(prompt, Message) else list(prompt))
        return {
            "prompt": stored,
            "history": messages_to_json(list(history)) if history else None,
            "deps": deps,
            "max_steps": max_steps,
            "stream": stream,
        }

    async def _start(self, run_id: str, request: dict[str, Any]) -> Any:
        with SetWorkflowID(run_id):
            return await DBOS.start_workflow_async(self._workflow, request)

    async def _execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """The workflow: one run of the loop, its events passed to a listener if there is one."""
        async with _admitted():
            return await self._execute_run(request)

    async def _execute_run(self, request: dict[str, Any]) -> dict[str, Any]:
        run_id = cast(str, DBOS.workflow_id)
        prompt = request.get("prompt")
        if isinstance(prompt, list):
            prompt = messages_from_json(prompt)
        history = request.get("history")
        result: RunResult[Any] | None = None
        try:
            async for event in self._loop.iter(
                prompt,
                message_history=messages_from_json(history) if history else None,
                deps=request.get("deps"),
                max_steps=request.get("max_steps"),
                stream=bool(request.get("stream")),
                run_id=run_id,
            ):
                if isinstance(event, RunFinished):
                    result = event.result
                else:
                    _emit(run_id, event)
        except Exception as exc:
            # Recorded as JSON with the run: the error, its transcript and usage.
            messages = getattr(exc, "messages", None)
            usage = getattr(exc, "usage", None)
            with contextlib.suppress(AttributeError, TypeError):  # exotic exception types
                exc.data = {  # type: ignore[attr-defined]  # read by DBOS's JSON error format
                    "error": error_to_json(exc),
                    "messages": messages_to_json(messages) if isinstance(messages, list) else [],
                    "usage": usage.model_dump() if isinstance(usage, Usage) else None,
                }
            raise
        assert result is not None
        data = result.to_dict()
        data["start"] = len(result.messages) - len(result.new_messages)
        return data

    async def _result(self, handle: Any) -> RunResult[OutputT]:
        try:
            data = await handle.get_result()
        except PortableWorkflowError as exc:  # a run that failed, read back from the database
            raise _failure(exc) from None
        return self._decode(data)

    def _decode(self, data: dict[str, Any]) -> RunResult[OutputT]:
        messages = messages_from_json(data["messages"])
        output: Any = data["output"]
        adapter = self._loop._output
        if adapter is not None:
            output = adapter.validate_python(output)
        return RunResult(
            output=output,
            messages=messages,
            new_messages=messages[int(data.get("start", 0)) :],
            usage=Usage.model_validate(data["usage"]),
            steps=int(data["steps"]),
            run_id=str(data["run_id"]),
        )


def _failure(exc: PortableWorkflowError) -> Exception:
    """The agentkit error a recorded failed run ended with, with its transcript and usage."""
    data: dict[str, Any] = exc.data if isinstance(exc.data, dict) else {}
    recorded = data.get("error")
    error = (
        error_from_json(recorded)
        if isinstance(recorded, dict)
        else error_from_json({"type": exc.name, "message": exc.message})
    )
    messages = data.get("messages")
    error.messages = messages_from_json(messages) if isinstance(messages, list) else []
    usage = data.get("usage")
    error.usage = Usage.model_validate(usage) if isinstance(usage, dict) else None
    return error
