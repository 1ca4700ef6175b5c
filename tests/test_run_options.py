"""Per-run options (settings, limits, output type, instructions) and the synchronous stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    ConfigurationError,
    MaxStepsExceeded,
    Message,
    ModelEvent,
    ModelSettings,
    RunFinished,
    StepFinished,
    TextDelta,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UsageLimitExceeded,
)
from agentkit.models.scripted import FunctionModel, ScriptedModel, to_response
from agentkit.tools import Tool, tool


class City(BaseModel):
    name: str
    population: int


@tool
def lookup(city: str) -> str:
    """Facts about a city.

    Args:
        city: the city
    """
    return f"{city} has 2 million people"


def test_settings_are_merged_over_the_agents_for_one_run() -> None:
    model = ScriptedModel(["a", "b"])
    agent = Agent(model, settings=ModelSettings(temperature=0.2, max_tokens=300))

    agent.run_sync("hi", settings=ModelSettings(temperature=0.9))
    agent.run_sync("hi")

    first, second = (r.settings for r in model.requests)
    assert first is not None and second is not None
    assert (first.temperature, first.max_tokens) == (0.9, 300)
    assert (second.temperature, second.max_tokens) == (0.2, 300)
    assert agent.settings == ModelSettings(temperature=0.2, max_tokens=300)


def test_settings_for_one_run_may_be_a_dict() -> None:
    model = ScriptedModel(["a"])
    Agent(model, settings={"temperature": 0.2}).run_sync("hi", settings={"seed": 7})
    sent = model.requests[0].settings
    assert sent is not None and (sent.temperature, sent.seed) == (0.2, 7)


def test_limits_can_be_tightened_for_one_run() -> None:
    always_calls = FunctionModel(
        lambda m, t: to_response(ToolCall(name="lookup", arguments={"city": "Rome"})).model_copy(
            update={"usage": Usage(total_tokens=100)}
        )
    )
    agent = Agent(always_calls, [lookup], max_steps=50)
    with pytest.raises(MaxStepsExceeded, match="max_steps=2"):
        agent.run_sync("go", max_steps=2)
    with pytest.raises(UsageLimitExceeded, match="max_total_tokens=250") as error:
        agent.run_sync("go", max_total_tokens=250)
    assert error.value.usage is not None and 1 <= error.value.usage.total_tokens <= 250
    assert (agent.max_steps, agent.max_total_tokens) == (50, None)


def test_output_type_for_one_run() -> None:
    model = ScriptedModel(['{"name": "Rome", "population": 2800000}', "plain words"])
    agent = Agent(model, system_prompt="You know cities.")

    result = agent.run_sync("Rome?", output_type=City)
    assert result.output == City(name="Rome", population=2800000)
    # The schema was sent with the request but is not part of the transcript...
    sent_system = model.requests[0].messages[0]
    assert (
        sent_system.content.startswith("You know cities.") and '"population"' in sent_system.content
    )
    assert result.messages[0].content == "You know cities."
    # ... and the agent still answers in text afterwards.
    assert agent.run_sync("And Paris?").output == "plain words"
    assert "population" not in model.requests[1].messages[0].content


def test_a_bad_answer_for_a_run_output_type_goes_back_to_the_model() -> None:
    model = ScriptedModel(['{"name": "Rome"}', '{"name": "Rome", "population": 1}'])
    result = Agent(model, retries=1).run_sync("Rome?", output_type=City)
    assert result.output.population == 1
    assert "population" in model.requests[1].messages[-1].content


def test_output_type_str_overrides_a_structured_agent() -> None:
    model = ScriptedModel(["just text"])
    agent = Agent(model, output_type=City, system_prompt="Be brief.")
    result = agent.run_sync("hi", output_type=str)
    assert result.output == "just text"
    assert model.requests[0].messages[0].content == "Be brief."


def test_instructions_go_with_every_request_of_the_run_only() -> None:
    model = ScriptedModel([ToolCall(name="lookup", arguments={"city": "Rome"}), "done", "again"])
    agent = Agent(model, [lookup], system_prompt="You know cities.")

    result = agent.run_sync("Rome?", instructions="Answer in French.")
    for request in model.requests:
        assert request.messages[0].content == "You know cities.\n\nAnswer in French."
    assert result.messages[0].content == "You know cities."  # not recorded
    # One message object for the whole run, so a cache keyed on the prompt prefix holds.
    assert model.requests[0].messages[0] is model.requests[1].messages[0]

    agent.run_sync("Again", message_history=result.messages)
    assert model.requests[-1].messages[0].content == "You know cities."


def test_instructions_without_a_system_prompt_become_one() -> None:
    model = ScriptedModel(["ok"])
    result = Agent(model).run_sync("hi", instructions="Be terse.")
    assert [(m.role, m.content) for m in model.requests[0].messages] == [
        ("system", "Be terse."),
        ("user", "hi"),
    ]
    assert [m.role for m in result.messages] == ["user", "assistant"]


def test_a_system_prompt_alone_is_nothing_to_run() -> None:
    model = ScriptedModel(["never"])
    with pytest.raises(ConfigurationError, match="nothing to run"):
        Agent(model, system_prompt="Be brief.").run_sync(instructions="Be terse.")
    assert model.requests == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"max_total_tokens": 0}, "max_total_tokens"),
        ({"settings": ["temperature"]}, "ModelSettings"),
        ({"settings": {"temperature": 9}}, "temperature"),
        ({"instructions": ["a"]}, "instructions"),
    ],
)
def test_bad_run_options_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Agent(ScriptedModel(["x"])).run_sync("hi", **kwargs)


async def test_concurrent_runs_with_different_options_do_not_mix() -> None:
    gate = asyncio.Barrier(3)

    async def reply(messages: list[Message], tools: list[Tool]) -> Any:
        await gate.wait()  # all three runs are in flight at once
        system = messages[0].content if messages[0].role == "system" else ""
        return system

    model = FunctionModel(reply)
    agent = Agent(model, system_prompt="Base.")
    results = await asyncio.gather(
        agent.run("a", instructions="One.", settings=ModelSettings(seed=1)),
        agent.run("b", instructions="Two.", settings=ModelSettings(seed=2)),
        agent.run("c"),
    )
    assert [r.output for r in results] == ["Base.\n\nOne.", "Base.\n\nTwo.", "Base."]
    seeds = sorted((r.settings.seed if r.settings else None) or 0 for r in model.requests)
    assert seeds == [0, 1, 2]


# --- stream_sync -----------------------------------------------------------------------------


def _script() -> list[Any]:
    return [ToolCall(name="lookup", arguments={"city": "Rome"}), "Rome is big, with 2 million."]


def test_stream_sync_gives_the_events_of_stream() -> None:
    events = list(Agent(ScriptedModel(_script()), [lookup]).stream_sync("Rome?"))

    async def collect() -> list[Any]:
        return [e async for e in Agent(ScriptedModel(_script()), [lookup]).stream("Rome?")]

    expected = asyncio.run(collect())
    assert [type(e) for e in events] == [type(e) for e in expected]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == (
        "Rome is big, with 2 million."
    )
    assert isinstance(events[-1], RunFinished)
    assert events[-1].result.output == "Rome is big, with 2 million."


async def test_stream_sync_works_inside_a_running_event_loop() -> None:
    agent = Agent(ScriptedModel(_script()), [lookup])
    kinds = [type(e).__name__ for e in agent.stream_sync("Rome?", max_steps=3)]
    assert kinds[:3] == ["ToolCallStarted", "ToolCallFinished", "StepFinished"]
    assert kinds[-1] == "RunFinished"


def test_stream_sync_passes_the_run_options() -> None:
    model = ScriptedModel(['{"name": "Rome", "population": 3}'])
    events = list(Agent(model).stream_sync("Rome?", output_type=City, instructions="Be exact."))
    assert isinstance(events[-1], RunFinished)
    assert events[-1].result.output == City(name="Rome", population=3)
    assert "Be exact." in model.requests[0].messages[0].content


class _ClosableModel:
    """Streams text slowly and records whether its stream was closed."""

    model_name = "closable"

    def __init__(self) -> None:
        self.closed = threading.Event()

    async def request(
        self, messages: Sequence[Message], tools: Sequence[Tool], settings: Any
    ) -> Any:
        raise AssertionError("not used")

    def stream(
        self, messages: Sequence[Message], tools: Sequence[Tool], settings: Any = None
    ) -> AsyncIterator[ModelEvent]:
        async def events() -> AsyncIterator[ModelEvent]:
            try:
                for i in range(1000):
                    yield TextDelta(f"word{i} ")
                    await asyncio.sleep(0)
            finally:
                self.closed.set()

        return events()


def test_breaking_out_of_stream_sync_closes_the_run() -> None:
    model = _ClosableModel()
    stream = Agent(model).stream_sync("talk")
    for event in stream:
        assert isinstance(event, TextDelta)
        break
    stream.close()  # what the end of the for statement's scope does in CPython
    assert model.closed.is_set()
    with pytest.raises(StopIteration):
        next(stream)


def test_an_error_in_a_stream_sync_run_reaches_the_caller_with_the_transcript() -> None:
    model = ScriptedModel([ToolCall(name="lookup", arguments={"city": "Rome"})] * 3)
    seen: list[Any] = []
    with pytest.raises(MaxStepsExceeded) as error:
        for event in Agent(model, [lookup]).stream_sync("Rome?", max_steps=2):
            seen.append(event)
    assert sum(isinstance(e, StepFinished) for e in seen) == 2
    assert sum(isinstance(e, ToolCallStarted) for e in seen) == 2
    assert sum(isinstance(e, ToolCallFinished) for e in seen) == 2
    assert len(error.value.messages) == 5
