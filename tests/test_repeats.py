"""The repeat guard: identical calls are answered from the earlier result, and not forever."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit import (
    Agent,
    ConfigurationError,
    Message,
    ModelResponse,
    RepeatedToolCallsError,
    ToolCall,
    tool,
)
from agentkit.testing import FunctionModel, ScriptedModel

RUNS: list[str] = []


@tool
def weather(city: str, days: int = 1) -> str:
    """The forecast.

    Args:
        city: The city.
        days: Days ahead.
    """
    RUNS.append(city)
    return f"sunny in {city} for {days} days"


@tool
def flaky(city: str) -> str:
    """Fails the first time.

    Args:
        city: The city.
    """
    RUNS.append(city)
    if len(RUNS) == 1:
        raise RuntimeError("temporary failure")
    return "ok"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RUNS.clear()


def repeating(answer_after: int | None) -> FunctionModel:
    """Calls weather(Paris) again and again (arguments in a new key order each time)."""

    def reply(messages: list[Message], tools: Any) -> Any:
        if not tools:
            return "Sunny in Paris."
        done = sum(1 for m in messages if m.role == "tool")
        if answer_after is not None and done >= answer_after:
            return "Sunny in Paris."
        args = {"city": "Paris", "days": 2} if done % 2 else {"days": 2, "city": "Paris"}
        return ToolCall(name="weather", arguments=args)

    return FunctionModel(reply)


async def test_a_repeated_call_is_answered_from_the_earlier_result_with_a_note() -> None:
    result = await Agent(repeating(answer_after=3), tools=[weather]).run("Weather?")
    assert RUNS == ["Paris"]  # the tool ran once
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert len(tool_messages) == 3
    assert tool_messages[0].content == "sunny in Paris for 2 days"
    for repeat in tool_messages[1:]:
        assert "sunny in Paris for 2 days" in repeat.content
        assert "already called weather with these same arguments" in repeat.content
        assert not repeat.is_error
    assert result.usage.tool_calls == 3


async def test_after_max_repeats_the_run_ends_with_a_clear_error() -> None:
    agent = Agent(
        repeating(answer_after=None),
        tools=[weather],
        max_steps=50,
        max_repeats=2,
        on_repeat="raise",
    )
    with pytest.raises(
        RepeatedToolCallsError, match=r"3 times \(max_repeats=2; tools: weather\)"
    ) as info:
        await agent.run("Weather?")
    assert RUNS == ["Paris"]
    assert info.value.usage.requests == 4  # 1 call + 3 repeats, then stopped
    tool_messages = [m for m in info.value.messages if m.role == "tool"]
    assert len(tool_messages) == 4  # every call has its result in the transcript


async def test_with_final_answer_it_asks_for_the_answer_instead() -> None:
    model = repeating(answer_after=None)
    agent = Agent(model, tools=[weather], max_steps=50, max_repeats=1, on_max_steps="final_answer")
    result = await agent.run("Weather?")
    assert result.output == "Sunny in Paris."
    assert result.steps == 4  # 1 call, 2 repeats (one over the limit), 1 final request
    assert model.requests[-1].tools == []
    assert "repeating tool calls" in model.requests[-1].messages[-1].content


async def test_max_repeats_none_runs_every_call() -> None:
    agent = Agent(repeating(answer_after=3), tools=[weather], max_repeats=None)
    await agent.run("Weather?")
    assert RUNS == ["Paris"] * 3


async def test_different_arguments_and_earlier_errors_run_again() -> None:
    model = ScriptedModel(
        [
            ToolCall(name="flaky", arguments={"city": "Oslo"}),  # fails
            ToolCall(name="flaky", arguments={"city": "Oslo"}),  # runs again: last was an error
            ToolCall(name="weather", arguments={"city": "Rome"}),
            ToolCall(name="weather", arguments={"city": "Rome", "days": 3}),  # other arguments
            "done",
        ]
    )
    result = await Agent(model, tools=[flaky, weather]).run("Go.")
    assert RUNS == ["Oslo", "Oslo", "Rome", "Rome"]
    assert result.output == "done"


async def test_repeats_are_counted_per_run() -> None:
    agent = Agent(repeating(answer_after=2), tools=[weather], max_repeats=1)
    for _ in range(3):
        await agent.run("Weather?")
    assert RUNS == ["Paris"] * 3


def test_bad_settings_are_refused() -> None:
    model = FunctionModel(lambda m, t: ModelResponse(text="x"))
    with pytest.raises(ConfigurationError, match="max_repeats"):
        Agent(model, max_repeats=-1)
    with pytest.raises(ConfigurationError, match="on_repeat must be 'final_answer' or 'raise'"):
        Agent(model, on_repeat="stop")  # type: ignore[arg-type]


async def test_endless_identical_calls_end_early_with_a_final_answer() -> None:
    model = repeating(answer_after=None)
    result = await Agent(model, tools=[weather], max_steps=10).run("Weather?")
    assert result.output == "Sunny in Paris."
    assert result.steps == 5  # 1 call + 3 repeats + 1 final request, not 10 requests


@tool
def echo(value: Any) -> str:
    """Echo a value.

    Args:
        value: Anything.
    """
    RUNS.append(repr(value))
    return repr(value)


async def test_values_must_match_in_type_and_nested_keys_in_any_order() -> None:
    model = ScriptedModel(
        [
            ToolCall(name="echo", arguments={"value": 1}),
            ToolCall(name="echo", arguments={"value": True}),  # 1 == True, but not the same call
            ToolCall(name="echo", arguments={"value": 1.0}),
            ToolCall(name="echo", arguments={"value": {"a": [1, {"x": 1, "y": 2}], "b": 2}}),
            ToolCall(name="echo", arguments={"value": {"b": 2, "a": [1, {"y": 2, "x": 1}]}}),
            "done",
        ]
    )
    result = await Agent(model, tools=[echo]).run("Go.")
    assert RUNS == ["1", "True", "1.0", "{'a': [1, {'x': 1, 'y': 2}], 'b': 2}"]
    assert "already called echo" in result.messages[-2].content
