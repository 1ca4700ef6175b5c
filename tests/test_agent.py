"""The agent loop: tool steps, errors the model can act on, limits, output types, resume."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit.agent import (
    Agent,
    RunFinished,
    StepFinished,
    ToolCallFinished,
    ToolCallStarted,
)
from agentkit.errors import (
    ConfigurationError,
    MaxStepsExceeded,
    ModelConnectionError,
    OutputValidationError,
    ToolExecutionError,
    ToolRetriesExceeded,
    UsageLimitExceeded,
)
from agentkit.messages import Message, ModelResponse, TextDelta, ToolCall, Usage
from agentkit.testing import FunctionModel, ScriptedModel
from agentkit.tools import ToolContext, tool


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


@tool
def fail(reason: str) -> str:
    """Always fails.

    Args:
        reason: why
    """
    raise RuntimeError(f"broken: {reason}")


def call(name: str, id: str = "", **arguments: Any) -> ToolCall:
    return ToolCall(id=id or f"id_{name}", name=name, arguments=arguments)


def assert_every_call_answered(messages: list[Message]) -> None:
    """Each assistant tool call has exactly one tool message, and ids are unique."""
    ids = [c.id for m in messages for c in m.tool_calls]
    assert len(ids) == len(set(ids)), ids
    answers = [m.tool_call_id for m in messages if m.role == "tool"]
    assert sorted(answers) == sorted(ids)


async def test_tool_step_then_answer() -> None:
    model = ScriptedModel([call("add", a=2, b=3), "The sum is 5."])
    agent = Agent(model, [add], system_prompt="Be brief.")
    result = await agent.run("What is 2 + 3?")

    assert result.output == "The sum is 5."
    assert result.steps == 2
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[3].content == "5"
    assert result.messages[3].tool_call_id == result.messages[2].tool_calls[0].id
    assert [m.role for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    assert result.usage.requests == 2
    assert result.usage.tool_calls == 1
    # The model saw the tools and the growing transcript.
    assert model.requests[0].tool_names == ["add"]
    assert [m.role for m in model.requests[1].messages][-1] == "tool"
    assert_every_call_answered(result.messages)


async def test_history_continues_conversation_without_second_system_prompt() -> None:
    agent = Agent(ScriptedModel(["first", "second"]), system_prompt="sys")
    first = await agent.run("one")
    second = await agent.run("two", message_history=first.messages)
    assert [m.role for m in second.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert second.output == "second"
    assert [m.content for m in second.new_messages] == ["two", "second"]
    assert len(first.messages) == 3  # the caller's list is not changed


async def test_plain_functions_become_tools_and_duplicate_names_are_rejected() -> None:
    def shout(text: str) -> str:
        """Shout.

        Args:
            text: what to shout
        """
        return text.upper()

    agent = Agent(ScriptedModel([call("shout", text="hi"), "done"]), [shout])
    result = await agent.run("go")
    assert result.messages[-2].content == "HI"
    with pytest.raises(ConfigurationError, match="two tools are named 'add'"):
        Agent(ScriptedModel([]), [add, add])


async def test_repeated_and_missing_call_ids_are_made_unique() -> None:
    same = [ToolCall(id="x", name="add", arguments={"a": 1, "b": i}) for i in range(3)]
    model = ScriptedModel([same, [ToolCall(id="", name="add", arguments={"a": 0, "b": 0})], "ok"])
    result = await Agent(model, [add]).run("go")
    assert_every_call_answered(result.messages)
    tool_contents = [m.content for m in result.messages if m.role == "tool"]
    assert tool_contents == ["1", "2", "3", "0"]  # call order kept


async def test_unknown_tool_goes_back_to_the_model_with_the_tool_names() -> None:
    model = ScriptedModel([call("multiply", a=2, b=3), call("add", a=2, b=3), "5"])
    result = await Agent(model, [add]).run("go")
    error = result.messages[2]
    assert error.role == "tool" and error.is_error
    assert "multiply" in error.content and "add" in error.content
    assert result.output == "5"


async def test_invalid_arguments_are_explained_then_the_budget_runs_out() -> None:
    bad = [call("add", id=f"c{i}", a="two", b=3) for i in range(3)]
    model = ScriptedModel([bad[0], bad[1], bad[2], "never"])
    agent = Agent(model, [add])  # default budget: 2 failures in a row are told to the model
    with pytest.raises(ToolRetriesExceeded) as info:
        await agent.run("go")
    assert info.value.tool_name == "add"
    assert "3 times" in str(info.value)
    errors = [m for m in info.value.messages if m.role == "tool"]
    assert len(errors) == 3 and all(m.is_error for m in errors)
    assert "two" in errors[0].content and "expected a whole number" in errors[0].content
    assert_every_call_answered(info.value.messages)
    assert info.value.usage is not None and info.value.usage.requests == 3


async def test_a_success_resets_the_retry_budget() -> None:
    replies: list[Any] = []
    for i in range(3):
        replies += [call("add", id=f"bad{i}", a="x", b=1), call("add", id=f"ok{i}", a=1, b=1)]
    agent = Agent(ScriptedModel([*replies, "done"]), [add], retries=1, max_steps=20)
    assert (await agent.run("go")).output == "done"


async def test_per_tool_max_retries_overrides_the_agent_default() -> None:
    strict = tool(add.function, name="strict_add", max_retries=0)
    model = ScriptedModel([call("strict_add", a="x", b=1), "never"])
    with pytest.raises(ToolRetriesExceeded):
        await Agent(model, [strict], retries=5).run("go")


async def test_tool_exception_is_told_to_the_model() -> None:
    model = ScriptedModel([call("fail", reason="disk"), "sorry"])
    result = await Agent(model, [fail]).run("go")
    message = result.messages[-2]
    assert message.is_error and "RuntimeError" in message.content and "disk" in message.content
    assert result.output == "sorry"


async def test_on_tool_error_raise_keeps_transcript_and_resume_runs_only_the_failed_call() -> None:
    runs: list[str] = []
    broken = {"on": True}

    @tool
    def record(label: str) -> str:
        """Record a label.

        Args:
            label: the label
        """
        runs.append(label)
        if label == "b" and broken["on"]:
            raise ValueError("not now")
        return f"saved {label}"

    calls = [call("record", id="1", label="a"), call("record", id="2", label="b")]
    model = ScriptedModel([calls, "all saved"])
    agent = Agent(model, [record], on_tool_error="raise", max_tool_concurrency=1)
    with pytest.raises(ToolExecutionError) as info:
        await agent.run("save a and b")
    assert isinstance(info.value.original, ValueError)
    transcript = info.value.messages
    assert [m.role for m in transcript] == ["user", "assistant", "tool"]
    assert transcript[-1].content == "saved a"

    broken["on"] = False
    runs.clear()
    result = await agent.run(message_history=transcript)
    assert runs == ["b"]  # "a" already had its result
    assert result.output == "all saved"
    assert_every_call_answered(result.messages)


async def test_timeout_is_told_to_the_model() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        """Takes too long."""
        await asyncio.sleep(5)
        return "late"

    result = await Agent(ScriptedModel([call("slow"), "gave up"]), [slow]).run("go")
    assert result.messages[-2].is_error and "timed out" in result.messages[-2].content


async def test_async_tools_run_concurrently_and_results_keep_call_order() -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    @tool
    async def wait(label: str) -> str:
        """Wait for the other call.

        Args:
            label: the label
        """
        started.append(label)
        if len(started) == 2:
            both_started.set()
        # Only finishes if both calls are running at once; bounded so a bug cannot hang.
        await asyncio.wait_for(both_started.wait(), timeout=5)
        if label == "first":
            await asyncio.sleep(0.01)  # finishes last, yet its result comes first
        return label

    model = ScriptedModel(
        [[call("wait", "1", label="first"), call("wait", "2", label="second")], "ok"]
    )
    result = await Agent(model, [wait]).run("go")
    assert [m.content for m in result.messages if m.role == "tool"] == ["first", "second"]


async def test_sequential_tools_and_concurrency_limit() -> None:
    running = 0
    peak = 0

    async def track() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1

    @tool
    async def parallel_job(n: int) -> int:
        """A job.

        Args:
            n: number
        """
        await track()
        return n

    @tool(sequential=True)
    async def lonely_job(n: int) -> int:
        """A job that must run alone.

        Args:
            n: number
        """
        assert running == 0
        await track()
        return n

    calls = [
        call("parallel_job", "1", n=1),
        call("parallel_job", "2", n=2),
        call("lonely_job", "3", n=3),
        call("parallel_job", "4", n=4),
        call("parallel_job", "5", n=5),
        call("parallel_job", "6", n=6),
    ]
    result = await Agent(ScriptedModel([calls, "ok"]), [parallel_job, lonely_job]).run("go")
    assert [m.content for m in result.messages if m.role == "tool"] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert peak == 3

    peak = 0
    limited = Agent(
        ScriptedModel([calls, "ok"]), [parallel_job, lonely_job], max_tool_concurrency=2
    )
    await limited.run("go")
    assert peak == 2


async def test_huge_tool_output_is_cut_with_a_note() -> None:
    @tool
    def dump() -> str:
        """Return a lot."""
        return "x" * 50_000

    agent = Agent(ScriptedModel([call("dump"), "ok"]), [dump], max_tool_output_chars=1000)
    result = await agent.run("go")
    content = result.messages[-2].content
    assert len(content) <= 1000
    assert "first" in content and "50000 characters" in content


async def test_max_steps_raises_with_a_valid_transcript() -> None:
    model = FunctionModel(lambda messages, tools: call("add", a=1, b=1))
    with pytest.raises(MaxStepsExceeded, match="max_steps=3") as info:
        await Agent(model, [add], max_steps=3).run("loop forever")
    assert len(model.requests) == 3
    assert_every_call_answered(info.value.messages)
    assert info.value.usage is not None and info.value.usage.tool_calls == 3


async def test_max_steps_final_answer_asks_once_more_without_tools() -> None:
    model = ScriptedModel([call("add", "1", a=1, b=1), call("add", "2", a=2, b=2), "best guess: 4"])
    agent = Agent(model, [add], max_steps=2, on_max_steps="final_answer")
    result = await agent.run("go")
    assert result.output == "best guess: 4"
    assert result.steps == 3
    last = model.requests[-1]
    assert last.tools == [] and last.last.role == "user" and "final answer" in last.last.content


async def test_max_steps_final_answer_still_calling_tools_raises() -> None:
    model = FunctionModel(lambda messages, tools: call("add", a=1, b=1))
    agent = Agent(model, [add], max_steps=1, on_max_steps="final_answer")
    with pytest.raises(MaxStepsExceeded, match="still called tools") as info:
        await agent.run("go")
    assert_every_call_answered(info.value.messages)


async def test_token_budget() -> None:
    def reply(messages: list[Message], tools: list[Any]) -> ModelResponse:
        return ModelResponse(
            tool_calls=[call("add", a=1, b=2)], usage=Usage(prompt_tokens=60, total_tokens=60)
        )

    model = FunctionModel(reply)
    agent = Agent(model, [add], max_total_tokens=150)
    with pytest.raises(UsageLimitExceeded, match="120 tokens") as info:
        await agent.run("go")
    assert info.value.usage is not None and info.value.usage.total_tokens == 120
    # The second reply may use only what is left once its prompt (>= 60 tokens) is counted.
    assert [r.settings and r.settings.max_tokens for r in model.requests] == [150, 30]
    assert_every_call_answered(info.value.messages)


async def test_cut_final_answer_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedModel([ModelResponse(text="The answer is", finish_reason="length")])
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        result = await Agent(model).run("go")
    assert result.output == "The answer is"
    assert any("max_tokens" in r.getMessage() for r in caplog.records)


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Paris", "population": 2100000}',
        'Here you go:\n```json\n{"name": "Paris", "population": 2100000}\n```',
        'The city is {"name": "Paris", "population": 2100000} as requested.',
    ],
)
async def test_structured_output_is_parsed(answer: str) -> None:
    model = ScriptedModel([answer])
    agent = Agent(model, output_type=City)
    result = await agent.run("Biggest city in France?")
    assert result.output == City(name="Paris", population=2_100_000)
    system = model.requests[0].messages[0]
    assert system.role == "system" and '"population"' in system.content


async def test_bad_structured_output_goes_back_then_fails() -> None:
    model = ScriptedModel(['{"name": "Paris"}', '{"name": "Paris", "population": 5}'])
    result = await Agent(model, output_type=City).run("go")
    assert result.output.population == 5
    retry = model.requests[1].last
    assert retry.role == "user" and "population" in retry.content

    model = ScriptedModel(["no json here"] * 3)
    with pytest.raises(OutputValidationError, match="3 attempts") as info:
        await Agent(model, output_type=City).run("go")
    # system, user, then answer + correction twice, and the last answer
    assert len(info.value.messages) == 7


async def test_model_errors_carry_the_transcript() -> None:
    model = ScriptedModel([call("add", a=1, b=2), ModelConnectionError("connection reset")])
    agent = Agent(model, [add])
    with pytest.raises(ModelConnectionError) as info:
        await agent.run("go")
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool"]
    assert info.value.usage is not None and info.value.usage.requests == 1
    # The transcript continues the run, without running the tool again.
    resumed = await Agent(ScriptedModel(["3"]), [add]).run(message_history=info.value.messages)
    assert resumed.output == "3"


async def test_cancellation_answers_pending_calls() -> None:
    entered = asyncio.Event()

    @tool
    async def forever() -> str:
        """Never returns."""
        entered.set()
        await asyncio.sleep(60)
        return "never"

    agent = Agent(
        ScriptedModel([[call("forever", "1"), call("add", "2", a=1, b=1)]]), [forever, add]
    )
    task = asyncio.create_task(agent.run("go"))
    await asyncio.wait_for(entered.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await asyncio.wait_for(task, timeout=5)
    messages = info.value.messages  # type: ignore[attr-defined]
    assert_every_call_answered(messages)
    tools = {m.tool_call_id: m for m in messages if m.role == "tool"}
    assert tools["1"].is_error and "cancelled" in tools["1"].content
    assert tools["2"].content == "2"


async def test_approval() -> None:
    @tool(requires_approval=True)
    def delete(path: str) -> str:
        """Delete a file.

        Args:
            path: the file
        """
        return f"deleted {path}"

    asked: list[ToolCall] = []

    async def approve(c: ToolCall) -> bool:
        asked.append(c)
        return c.arguments.get("path") != "/etc"

    model = ScriptedModel(
        [[call("delete", "1", path="/tmp/x"), call("delete", "2", path="/etc")], "ok"]
    )
    result = await Agent(model, [delete, add], approve=approve).run("go")
    tools = [m for m in result.messages if m.role == "tool"]
    assert tools[0].content == "deleted /tmp/x"
    assert tools[1].is_error and "not approve" in tools[1].content
    assert len(asked) == 2

    # Without a callback, calls that need approval are refused; approve_all asks for every tool.
    result = await Agent(ScriptedModel([call("delete", path="a"), "ok"]), [delete]).run("go")
    assert result.messages[-2].is_error
    asked.clear()
    agent = Agent(
        ScriptedModel([call("add", a=1, b=1), "ok"]), [add], approve=approve, approve_all=True
    )
    await agent.run("go")
    assert [c.name for c in asked] == ["add"]


async def test_tool_context_and_agent_as_tool_usage() -> None:
    seen: dict[str, Any] = {}

    @tool
    def whoami(ctx: ToolContext[dict[str, str]]) -> str:
        """Tell who the user is."""
        seen.update(run_id=ctx.run_id, call=ctx.tool_call_id, step=ctx.step, n=len(ctx.messages))
        return ctx.deps["user"]

    inner_model = ScriptedModel([ModelResponse(text="42", usage=Usage(total_tokens=7))])
    inner = Agent(inner_model, name="math expert", description="Answers math questions.")
    helper = inner.as_tool()
    assert helper.name == "math_expert" and helper.description == "Answers math questions."

    model = ScriptedModel(
        [
            [
                call("whoami", "w"),
                ToolCall(id="m", name="math_expert", arguments={"request": "6*7"}),
            ],
            ModelResponse(text="Ada, 42", usage=Usage(total_tokens=5)),
        ]
    )
    result = await Agent(model, [whoami, helper]).run("go", deps={"user": "Ada"})
    tools = {m.tool_call_id: m.content for m in result.messages if m.role == "tool"}
    assert tools == {"w": "Ada", "m": "42"}
    assert seen["call"] == "w" and seen["step"] == 1 and seen["run_id"] and seen["n"] == 2
    assert result.usage.total_tokens == 12  # the inner run's tokens count too
    assert result.usage.requests == 3


async def test_streaming_events() -> None:
    model = ScriptedModel(
        [
            ModelResponse(text="Let me add those.", tool_calls=[call("add", a=2, b=2)]),
            "The total is four, as computed.",
        ]
    )
    events = [e async for e in Agent(model, [add]).stream("2+2?")]
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "RunFinished"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallFinished")
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert [s.step for s in steps] == [1, 2]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished[0].result.content == "4"
    assert isinstance(events[0], TextDelta)  # text before the calls is shown...
    result = events[-1].result  # type: ignore[union-attr]
    assert result.output == "The total is four, as computed."  # ...but is not the answer
    text_after = "".join(
        e.text for e in events[kinds.index("ToolCallFinished") :] if isinstance(e, TextDelta)
    )
    assert text_after == result.output
    assert isinstance(events[-1], RunFinished)
    assert any(isinstance(e, ToolCallStarted) for e in events)


async def test_streaming_hides_calls_written_as_text() -> None:
    written = '{"name": "add", "parameters": {"a": 1, "b": 1}}'
    model = ScriptedModel(
        [ModelResponse(text=written, tool_calls=[call("add", a=1, b=1)]), '["a", "list", "answer"]']
    )
    events = [e async for e in Agent(model, [add]).stream("go")]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == '["a", "list", "answer"]'  # held back, then shown: it was the answer


async def test_debug_logs_name_steps_and_tools_but_not_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedModel([call("add", a=123456, b=654321), "done"])
    with caplog.at_level(logging.DEBUG, logger="agentkit"):
        await Agent(model, [add]).run("go")
    lines = [r.getMessage() for r in caplog.records if r.name == "agentkit.agent"]
    assert sum("step" in line for line in lines) == 2
    assert sum("tool add" in line for line in lines) == 1
    assert not any("123456" in line for line in lines)


def test_run_sync_works_in_and_out_of_a_running_loop() -> None:
    agent = Agent(ScriptedModel(["one", "two"]))
    assert agent.run_sync("hi").output == "one"

    async def inside() -> str:
        return agent.run_sync("hi").output

    assert asyncio.run(inside()) == "two"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"max_tool_concurrency": 0}, "max_tool_concurrency"),
        ({"on_tool_error": "ignore"}, "on_tool_error"),
        ({"on_max_steps": "stop"}, "on_max_steps"),
        ({"max_total_tokens": 0}, "max_total_tokens"),
        ({"max_tool_output_chars": 10}, "max_tool_output_chars"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Agent(ScriptedModel([]), **kwargs)


async def test_nothing_to_run_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="prompt or a message_history"):
        await Agent(ScriptedModel([])).run()
