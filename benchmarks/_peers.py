"""The same 4-request task for each framework, each with its own in-process fake model.

The task: a sync ``add(a: int, b: int)`` tool; the model calls it three times (one call per step),
then answers with text. Every framework's fake model decides its reply from the number of tool
results in the conversation so far, so all do the same work per step.

Each ``make_*`` returns ``(run_once, name)`` where ``await run_once()`` performs one whole run and
returns the final text. Peers that are not installed are skipped by the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

CALLS_PER_RUN = 3
STEPS_PER_RUN = CALLS_PER_RUN + 1
ANSWER = "The sum is 6."

RunOnce = Callable[[], Awaitable[str]]


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def make_agentkit() -> RunOnce:
    from agentkit import Agent, ModelResponse, ToolCall, tool
    from agentkit.testing import FunctionModel

    add_tool = tool(add)

    def reply(messages: Any, tools: Any) -> ModelResponse:
        done = sum(1 for m in messages if m.role == "tool")
        if done < CALLS_PER_RUN:
            return ModelResponse(tool_calls=[ToolCall(name="add", arguments={"a": done, "b": 1})])
        return ModelResponse(text=ANSWER)

    agent = Agent(FunctionModel(reply), tools=[add_tool])

    async def run_once() -> str:
        result = await agent.run("Add some numbers.")
        return str(result.output)

    return run_once


def make_pydantic_ai() -> RunOnce:
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

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = sum(
            1
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        )
        if done < CALLS_PER_RUN:
            return ModelResponse(parts=[ToolCallPart("add", {"a": done, "b": 1})])
        return ModelResponse(parts=[TextPart(ANSWER)])

    agent = Agent(FunctionModel(reply), tools=[add])

    async def run_once() -> str:
        result = await agent.run("Add some numbers.")
        return str(result.output)

    return run_once


def make_openai_agents() -> RunOnce:
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

    class FakeModel(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *args: Any, **kw: Any
        ) -> Any:
            items = input if isinstance(input, list) else []
            done = sum(1 for item in items if _get(item, "type") == "function_call_output")
            if done < CALLS_PER_RUN:
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

    agent = Agent(name="bench", model=FakeModel(), tools=[function_tool(add)])

    async def run_once() -> str:
        result = await Runner.run(agent, "Add some numbers.")
        return str(result.final_output)

    return run_once


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


FRAMEWORKS: dict[str, Callable[[], RunOnce]] = {
    "agentkit": make_agentkit,
    "pydantic-ai": make_pydantic_ai,
    "openai-agents": make_openai_agents,
}
