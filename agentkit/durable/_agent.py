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
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, cast

from dbos import DBOS, PortableWorkflowError, SetWorkflowID
from dbos import WorkflowSerializationFormat as _Format

from .._sync import run_sync
from ..agent import Agent, AgentEvent, OutputT, RunFinished, RunResult
from ..errors import ConfigurationError
from ..messages import Message, Usage
from . import _engine
from ._codec import check_json, error_from_json, error_to_json, messages_from_json, messages_to_json
from ._loop import Listener, admitted, durable_copy, emit, listeners, listeners_lock

__all__ = ["DurableAgent", "failure_from"]

_agents: dict[str, DurableAgent[Any]] = {}

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
        self._loop = durable_copy(agent)

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
        listener = Listener()
        with listeners_lock:
            if run_id in listeners:
                raise ConfigurationError(f"run {run_id!r} is already being streamed here")
            listeners[run_id] = listener
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
            with listeners_lock:
                listeners.pop(run_id, None)

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
        async with admitted():
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
                    emit(run_id, event)
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
            raise failure_from(exc) from None
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


def failure_from(exc: PortableWorkflowError) -> Exception:
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
