"""The same task for each framework, each with its own in-process fake model.

The task (defaults): a sync ``add(a: int, b: int)`` tool; the model calls it three times (one
call per step), then answers with text: four model requests per run. A :class:`Task` changes
the number of tools offered (``add`` plus documented filler tools), the steps per run and the
size of the tool's output, for the scaling curves.

Every framework's fake model decides its reply from the number of tool results in the
conversation so far, so all do the same work per step. Every fake model **pauses once per model
request** (``await asyncio.sleep(0)``), as a real request does: without it a run never yields
to the event loop, so "runs in flight" would run one after another for a framework whose fake
model is a plain coroutine, and overlap for one whose model happens to yield.

Each ``make_*`` returns ``run_once`` where ``await run_once()`` performs one whole run and returns
the final text. Peers that are not installed raise ``ImportError``; the caller skips them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

CALLS_PER_RUN = 3
STEPS_PER_RUN = CALLS_PER_RUN + 1
ANSWER = "The sum is 6."
PROMPT = "Add some numbers."

RunOnce = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Task:
    """What one run does: ``tools`` offered (``add`` first), ``steps`` model requests, and the
    characters of each tool result (0: the bare sum)."""

    tools: int = 1
    steps: int = STEPS_PER_RUN
    output_chars: int = 0
    pause: bool = True

    @property
    def calls(self) -> int:
        return self.steps - 1


DEFAULT = Task()


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def _functions(task: Task) -> list[Callable[..., Any]]:
    """``add`` (or a version with a padded result) and ``task.tools - 1`` documented fillers."""
    if task.output_chars:
        pad = task.output_chars

        def add(a: int, b: int) -> str:  # the same tool with a longer result
            """Add two integers.

            Args:
                a: The first number.
                b: The second number.
            """
            return str(a + b).ljust(pad, ".")

        functions: list[Callable[..., Any]] = [add]
    else:
        functions = [globals()["add"]]
    for i in range(task.tools - 1):
        functions.append(_filler(i))
    return functions


def _filler(i: int) -> Callable[..., Any]:
    def lookup(key: str, limit: int = 5, exact: bool = False) -> str:
        """Look a key up in one of the reference tables.

        Args:
            key: The key to find.
            limit: How many rows to return.
            exact: Only exact matches.
        """
        return key

    lookup.__name__ = lookup.__qualname__ = f"lookup_{i}"
    return lookup


async def _pause(task: Task) -> None:
    if task.pause:
        await asyncio.sleep(0)


# --- the floor: a minimal loop doing the same work with pydantic messages -------------------------


def make_minimal(task: Task = DEFAULT) -> RunOnce:
    """The least a loop must do: pydantic messages, validated arguments, one tool message per call.

    No events, no per-call context, no retries, no approvals, no output cap: the in-process floor.
    """
    from pydantic import validate_call

    from agentkit.messages import Message, ModelResponse, ToolCall

    functions = {f.__name__: f for f in _functions(task)}
    validated = {name: validate_call(f) for name, f in functions.items()}
    calls = task.calls

    async def model(messages: list[Message]) -> ModelResponse:
        await _pause(task)
        done = sum(1 for m in messages if m.role == "tool")
        if done < calls:
            return ModelResponse(tool_calls=[ToolCall(name="add", arguments={"a": done, "b": 1})])
        return ModelResponse(text=ANSWER)

    async def run_once() -> str:
        messages = [Message(role="user", content=PROMPT)]
        while True:
            response = await model(messages)
            if not response.tool_calls:
                messages.append(Message(role="assistant", content=response.text or ""))
                return response.text or ""
            messages.append(Message(role="assistant", tool_calls=response.tool_calls))
            for call in response.tool_calls:
                value = validated[call.name](**call.arguments)
                messages.append(
                    Message(role="tool", content=str(value), tool_call_id=call.id, name=call.name)
                )

    return run_once


# --- the frameworks ------------------------------------------------------------------------------


def make_agentkit(task: Task = DEFAULT) -> RunOnce:
    from agentkit import Agent, ModelResponse, ToolCall, tool
    from agentkit.testing import FunctionModel

    calls = task.calls

    async def reply(messages: Any, tools: Any) -> ModelResponse:
        await _pause(task)
        done = sum(1 for m in messages if m.role == "tool")
        if done < calls:
            return ModelResponse(tool_calls=[ToolCall(name="add", arguments={"a": done, "b": 1})])
        return ModelResponse(text=ANSWER)

    # record=False: the test model would otherwise keep a copy of every request it served.
    agent = Agent(
        FunctionModel(reply, record=False),
        tools=[tool(f) for f in _functions(task)],
        max_steps=task.steps,
    )

    async def run_once() -> str:
        result = await agent.run(PROMPT)
        return str(result.output)

    return run_once


def make_pydantic_ai(task: Task = DEFAULT) -> RunOnce:
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import UsageLimits

    calls = task.calls

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await _pause(task)
        done = sum(
            1
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        )
        if done < calls:
            return ModelResponse(parts=[ToolCallPart("add", {"a": done, "b": 1})])
        return ModelResponse(parts=[TextPart(ANSWER)])

    agent = Agent(FunctionModel(reply), tools=_functions(task))
    limits = UsageLimits(request_limit=max(50, task.steps))

    async def run_once() -> str:
        result = await agent.run(PROMPT, usage_limits=limits)
        return str(result.output)

    return run_once


def make_openai_agents(task: Task = DEFAULT) -> RunOnce:
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    set_tracing_disabled(True)
    calls = task.calls

    class FakeModel(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *args: Any, **kw: Any
        ) -> Any:
            await _pause(task)
            items = input if isinstance(input, list) else []
            done = sum(1 for item in items if _get(item, "type") == "function_call_output")
            if done < calls:
                call = ResponseFunctionToolCall(
                    arguments=f'{{"a": {done}, "b": 1}}',
                    call_id=f"call_{done}",
                    name="add",
                    type="function_call",
                    id=f"fc_{done}",
                )
                return ModelResponse(output=[call], usage=Usage(requests=1), response_id=None)
            text = ResponseOutputMessage(
                id="msg_1",
                content=[ResponseOutputText(annotations=[], text=ANSWER, type="output_text")],
                role="assistant",
                status="completed",
                type="message",
            )
            return ModelResponse(output=[text], usage=Usage(requests=1), response_id=None)

        def stream_response(self, *args: Any, **kw: Any) -> Any:
            raise NotImplementedError

    agent = Agent(
        name="bench", model=FakeModel(), tools=[function_tool(f) for f in _functions(task)]
    )

    async def run_once() -> str:
        result = await Runner.run(agent, PROMPT, max_turns=max(10, task.steps))
        return str(result.final_output)

    return run_once


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


FRAMEWORKS: dict[str, Callable[[Task], RunOnce]] = {
    "minimal loop (floor)": make_minimal,
    "agentkit": make_agentkit,
    "pydantic-ai": make_pydantic_ai,
    "openai-agents": make_openai_agents,
}
