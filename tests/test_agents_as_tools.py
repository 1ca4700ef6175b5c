"""Agents as tools: a coordinator delegates to specialists, counts their usage, survives failures."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.agent import Agent
from agentkit.errors import MaxStepsExceeded, ServerError, ToolExecutionError
from agentkit.messages import ModelResponse, ToolCall, Usage
from agentkit.testing import ScriptedModel
from agentkit.tools import ToolContext, tool


def reply(
    text: str | None = None, calls: list[ToolCall] | None = None, tokens: int = 10
) -> ModelResponse:
    """A reply that used ``tokens`` tokens (split 7/3 between prompt and completion)."""
    return ModelResponse(
        text=text,
        tool_calls=calls or [],
        usage=Usage(
            prompt_tokens=tokens - tokens * 3 // 10,
            completion_tokens=tokens * 3 // 10,
            total_tokens=tokens,
        ),
        finish_reason="tool_calls" if calls else "stop",
    )


def miles_to_km(value: float) -> ToolCall:
    return ToolCall(
        name="convert_units", arguments={"value": value, "from_unit": "mi", "to_unit": "km"}
    )


@tool
def convert_units(value: float, from_unit: str, to_unit: str, context: ToolContext[Any]) -> str:
    """Convert an amount between units.

    Args:
        value: the amount
        from_unit: its unit
        to_unit: the unit wanted
    """
    assert (from_unit, to_unit) == ("mi", "km")
    suffix = f" for {context.deps}" if context.deps else ""
    return f"{value * 1.609344:.3f} km{suffix}"


def test_the_coordinator_delegates_and_reads_the_specialists_answer() -> None:
    specialist_model = ScriptedModel(
        [
            reply(calls=[miles_to_km(26.2)]),
            reply("A marathon is about 42.165 km."),
        ]
    )
    specialist = Agent(
        specialist_model,
        [convert_units],
        name="unit converter",
        description="Converts amounts between units.",
    )
    delegated = "How many km is 26.2 miles?"
    coordinator_model = ScriptedModel(
        [
            reply(calls=[ToolCall(name="unit_converter", arguments={"request": delegated})]),
            reply("It is about 42.2 km."),
        ]
    )
    coordinator = Agent(coordinator_model, [specialist.as_tool()])

    result = coordinator.run_sync("Marathon length in km?", deps="the race")

    assert result.output == "It is about 42.2 km."
    # The coordinator was offered the specialist under its (tool-safe) name and description.
    offered = coordinator_model.requests[0].tools[0]
    assert (offered.name, offered.description) == (
        "unit_converter",
        "Converts amounts between units.",
    )
    assert "request" in offered.definition()["function"]["parameters"]["properties"]
    # The specialist got the request as its prompt, and the run's deps reached its tools.
    assert specialist_model.requests[0].last.content == delegated
    assert "42.165 km for the race" in specialist_model.requests[1].last.content
    # Its answer came back to the coordinator as the tool result.
    answer = coordinator_model.requests[1].last
    assert (answer.role, answer.is_error) == ("tool", False)
    assert answer.content == "A marathon is about 42.165 km."


def test_as_tool_names_and_describes_the_tool() -> None:
    specialist = Agent(ScriptedModel([]))
    named = specialist.as_tool(name="ask_expert", description="Ask the expert.")
    assert (named.name, named.description) == ("ask_expert", "Ask the expert.")
    fallback = specialist.as_tool()
    assert fallback.name == "ask_agent"
    assert "  " not in fallback.description and fallback.description


def test_usage_of_the_inner_runs_is_added_to_the_outer_run() -> None:
    specialist = Agent(
        ScriptedModel(
            [
                reply(calls=[miles_to_km(1)], tokens=100),
                reply("1.609 km", tokens=200),
                reply("2 mi is 3.219 km", tokens=400),
            ]
        ),
        [convert_units],
        name="converter",
    )
    coordinator = Agent(
        ScriptedModel(
            [
                reply(
                    calls=[ToolCall(name="converter", arguments={"request": "1 mi in km"})],
                    tokens=10,
                ),
                reply(
                    calls=[ToolCall(name="converter", arguments={"request": "2 mi in km"})],
                    tokens=20,
                ),
                reply("1.609 km and 3.219 km", tokens=40),
            ]
        ),
        [specialist.as_tool()],
    )

    result = coordinator.run_sync("1 and 2 miles in km?")

    # 3 coordinator requests + 2 (first specialist run) + 1 (second one).
    assert result.usage.requests == 6
    assert result.usage.total_tokens == 10 + 20 + 40 + 100 + 200 + 400
    assert result.usage.prompt_tokens + result.usage.completion_tokens == 770
    # 2 calls to the specialist + 1 call the specialist made to its own tool.
    assert result.usage.tool_calls == 3
    assert result.steps == 3  # steps stay the coordinator's own


def test_a_token_budget_counts_the_specialists_tokens() -> None:
    specialist = Agent(ScriptedModel([reply("done", tokens=5_000)]), name="worker")
    coordinator = Agent(
        ScriptedModel(
            [
                reply(calls=[ToolCall(name="worker", arguments={"request": "go"})], tokens=10),
                reply("never reached"),
            ]
        ),
        [specialist.as_tool()],
        max_total_tokens=1_000,
    )
    with pytest.raises(Exception, match="max_total_tokens=1000") as caught:
        coordinator.run_sync("start")
    assert caught.value.usage.total_tokens == 5_010  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "inner_failure",
    [
        pytest.param("max_steps", id="specialist-runs-out-of-steps"),
        pytest.param("model_error", id="specialist-model-fails"),
    ],
)
def test_an_inner_failure_comes_back_as_a_tool_error_the_coordinator_can_act_on(
    inner_failure: str,
) -> None:
    if inner_failure == "max_steps":
        inner_script: list[Any] = [
            reply(calls=[miles_to_km(1)], tokens=30),
        ]
        expected = "MaxStepsExceeded"
    else:
        inner_script = [ServerError("upstream failed", status=500)]
        expected = "ServerError"
    specialist = Agent(ScriptedModel(inner_script), [convert_units], name="converter", max_steps=1)
    coordinator_model = ScriptedModel(
        [
            reply(calls=[ToolCall(name="converter", arguments={"request": "1 mi in km"})]),
            reply("The converter failed; 1 mile is about 1.6 km."),
        ]
    )
    coordinator = Agent(coordinator_model, [specialist.as_tool()])

    result = coordinator.run_sync("1 mile in km?")

    assert result.output == "The converter failed; 1 mile is about 1.6 km."
    error = coordinator_model.requests[1].last
    assert (error.role, error.is_error) == ("tool", True)
    assert error.content.startswith("the converter agent could not finish: " + expected)
    assert "Try again with a simpler, more precise request" in error.content
    # What was spent before the failure still counts.
    inner_requests = 1 if inner_failure == "max_steps" else 0
    assert result.usage.requests == 2 + inner_requests
    assert result.usage.total_tokens == 20 + (30 if inner_failure == "max_steps" else 0)


def test_on_tool_error_raise_lets_an_inner_failure_stop_the_coordinator() -> None:
    specialist = Agent(ScriptedModel([ServerError("upstream failed", status=500)]), name="w")
    coordinator = Agent(
        ScriptedModel([reply(calls=[ToolCall(name="w", arguments={"request": "go"})])]),
        [specialist.as_tool()],
        on_tool_error="raise",
    )
    with pytest.raises(ToolExecutionError) as caught:
        coordinator.run_sync("start")
    assert isinstance(caught.value.original, ServerError)
    assert caught.value.messages  # the coordinator's transcript travels with the error


def test_the_inner_transcript_travels_with_the_failure() -> None:
    specialist = Agent(
        ScriptedModel([reply(calls=[ToolCall(name="nope", arguments={})])]), name="w", max_steps=1
    )
    coordinator = Agent(
        ScriptedModel([reply(calls=[ToolCall(name="w", arguments={"request": "go"})])]),
        [specialist.as_tool()],
        on_tool_error="raise",
    )
    with pytest.raises(ToolExecutionError) as caught:
        coordinator.run_sync("start")
    inner = caught.value.original
    assert isinstance(inner, MaxStepsExceeded)
    assert [m.role for m in inner.messages] == ["user", "assistant", "tool"]
