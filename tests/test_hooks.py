"""Hooks around a run, its model requests and its tool calls; the ``deps_type`` check."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from agentkit import Agent, HookError, Hooks, RunInfo, ToolCall, ToolContext, tool
from agentkit.errors import ConfigurationError, ModelHTTPError, ToolExecutionError
from agentkit.messages import ModelResponse, ToolResult
from agentkit.testing import ScriptedModel


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: first
        b: second
    """
    return a + b


@tool
def broken() -> str:
    """Always fails."""
    raise RuntimeError("out of order")


class Recorder(Hooks):
    """Records every call as (label, event, detail)."""

    def __init__(self, label: str, log: list[tuple[str, ...]]) -> None:
        self.label = label
        self.log = log

    def on_run_start(self, run: RunInfo) -> None:
        self.log.append((self.label, "run_start"))

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        outcome = f"error:{type(error).__name__}" if error else f"ok:{result.output}"
        self.log.append((self.label, "run_end", outcome))

    def on_model_start(self, run: RunInfo, messages: Any) -> None:
        self.log.append((self.label, "model_start", str(run.step)))

    def on_model_end(
        self, run: RunInfo, response: ModelResponse | None, error: BaseException | None
    ) -> None:
        self.log.append((self.label, "model_end", type(error).__name__ if error else "ok"))

    def on_tool_start(self, run: RunInfo, call: ToolCall) -> None:
        self.log.append((self.label, "tool_start", call.name))

    def on_tool_end(
        self,
        run: RunInfo,
        call: ToolCall,
        result: ToolResult | None,
        error: BaseException | None,
    ) -> None:
        if error is not None:
            detail = f"raised:{type(error).__name__}"
        else:
            assert result is not None
            detail = f"error:{result.content}" if result.is_error else f"ok:{result.content}"
        self.log.append((self.label, "tool_end", call.name, detail))


class AsyncRecorder:
    """A hook object without the base class, with async methods, and only some of them."""

    def __init__(self, log: list[tuple[str, ...]]) -> None:
        self.log = log

    async def on_run_start(self, run: RunInfo) -> None:
        await asyncio.sleep(0)
        self.log.append(("async", "run_start"))

    async def on_tool_end(self, run: RunInfo, call: ToolCall, result: Any, error: Any) -> None:
        await asyncio.sleep(0)
        self.log.append(("async", "tool_end", call.name))


def two_step_model() -> ScriptedModel:
    return ScriptedModel([ToolCall(name="add", arguments={"a": 1, "b": 2}), "3"])


async def test_hooks_see_every_event_in_order_ends_in_reverse() -> None:
    log: list[tuple[str, ...]] = []
    agent = Agent(two_step_model(), [add], hooks=[Recorder("a", log), Recorder("b", log)])
    result = await agent.run("1+2?")
    assert result.output == "3"
    assert log == [
        ("a", "run_start"),
        ("b", "run_start"),
        ("a", "model_start", "0"),
        ("b", "model_start", "0"),
        ("b", "model_end", "ok"),
        ("a", "model_end", "ok"),
        ("a", "tool_start", "add"),
        ("b", "tool_start", "add"),
        ("b", "tool_end", "add", "ok:3"),
        ("a", "tool_end", "add", "ok:3"),
        ("a", "model_start", "1"),
        ("b", "model_start", "1"),
        ("b", "model_end", "ok"),
        ("a", "model_end", "ok"),
        ("b", "run_end", "ok:3"),
        ("a", "run_end", "ok:3"),
    ]


async def test_async_hooks_and_partial_hook_objects() -> None:
    log: list[tuple[str, ...]] = []
    agent = Agent(two_step_model(), [add], hooks=AsyncRecorder(log))
    await agent.run("1+2?")
    assert log == [("async", "run_start"), ("async", "tool_end", "add")]


async def test_hooks_in_a_streamed_run() -> None:
    log: list[tuple[str, ...]] = []
    agent = Agent(two_step_model(), [add], hooks=Recorder("s", log))
    async for _ in agent.stream("1+2?"):
        pass
    assert [entry[1] for entry in log] == [
        "run_start",
        "model_start",
        "model_end",
        "tool_start",
        "tool_end",
        "model_start",
        "model_end",
        "run_end",
    ]


def test_run_info_gives_the_run() -> None:
    seen: list[RunInfo] = []

    class Keep(Hooks):
        def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
            seen.append(run)

    result = Agent(two_step_model(), [add], hooks=Keep()).run_sync("1+2?", deps={"k": 1})
    (info,) = seen
    assert info.run_id == result.run_id and info.conversation_id == result.run_id
    assert info.deps == {"k": 1} and info.step == 2 and info.stream is False
    assert info.messages is result.messages and info.usage == result.usage


async def test_a_failed_tool_and_a_failed_request_reach_the_end_hooks() -> None:
    log: list[tuple[str, ...]] = []
    failure = ModelHTTPError("server said no", status=500)
    model = ScriptedModel([ToolCall(name="broken"), failure])
    agent = Agent(model, [broken], hooks=Recorder("h", log))
    with pytest.raises(ModelHTTPError):
        await agent.run("go")
    (tool_end,) = [e for e in log if e[1] == "tool_end"]
    assert tool_end[3].startswith("error:") and "out of order" in tool_end[3]
    assert log[-2:] == [
        ("h", "model_end", "ModelHTTPError"),
        ("h", "run_end", "error:ModelHTTPError"),
    ]


async def test_a_tool_that_stops_the_run_reaches_on_tool_end_with_its_error() -> None:
    log: list[tuple[str, ...]] = []
    agent = Agent(
        ScriptedModel([ToolCall(name="broken")]),
        [broken],
        on_tool_error="raise",
        hooks=Recorder("h", log),
    )
    with pytest.raises(ToolExecutionError):
        await agent.run("go")
    assert log[-2:] == [
        ("h", "tool_end", "broken", "raised:ToolExecutionError"),
        ("h", "run_end", "error:ToolExecutionError"),
    ]


async def test_cancelled_run_ends_the_open_tool_and_the_run() -> None:
    log: list[tuple[str, ...]] = []
    entered = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Never returns."""
        entered.set()
        await asyncio.sleep(3600)
        return "never"

    model = ScriptedModel([ToolCall(name="wait_forever")])
    agent = Agent(model, [wait_forever], hooks=Recorder("h", log))
    task = asyncio.create_task(agent.run("go"))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log[-2:] == [
        ("h", "tool_end", "wait_forever", "raised:CancelledError"),
        ("h", "run_end", "error:CancelledError"),
    ]


async def test_a_hook_error_stops_the_run_with_hook_error_and_the_transcript() -> None:
    log: list[tuple[str, ...]] = []

    class Fails(Hooks):
        def on_tool_start(self, run: RunInfo, call: ToolCall) -> None:
            raise ValueError("no tools today")

    agent = Agent(two_step_model(), [add], hooks=[Recorder("r", log), Fails()])
    with pytest.raises(HookError) as info:
        await agent.run("1+2?")
    error = info.value
    assert error.hook == "Fails.on_tool_start" and isinstance(error.original, ValueError)
    assert "Fails.on_tool_start raised ValueError: no tools today" in str(error)
    assert error.messages[-1].tool_calls  # the transcript came along
    assert error.usage is not None and error.usage.requests == 1
    # Every start got its end, the run's too, with the hook's error.
    assert log[-2:] == [
        ("r", "tool_end", "add", "raised:HookError"),
        ("r", "run_end", "error:HookError"),
    ]


async def test_a_hook_error_while_the_run_fails_is_logged_not_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class FailsAtEnd(Hooks):
        def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
            raise KeyError("bookkeeping")

    model = ScriptedModel([ModelHTTPError("down", status=503)])
    agent = Agent(model, hooks=FailsAtEnd())
    with caplog.at_level(logging.WARNING, logger="agentkit"), pytest.raises(ModelHTTPError):
        await agent.run("go")
    (record,) = [r for r in caplog.records if "FailsAtEnd.on_run_end" in r.getMessage()]
    assert record.levelno == logging.WARNING and "KeyError" in record.getMessage()


async def test_a_hook_error_after_success_is_raised() -> None:
    class FailsAtEnd(Hooks):
        def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
            if error is None:
                raise RuntimeError("could not save")

    with pytest.raises(HookError, match="could not save"):
        await Agent(two_step_model(), [add], hooks=FailsAtEnd()).run("1+2?")


def test_hook_objects_are_checked_when_the_agent_is_built() -> None:
    class Typo:
        def on_tool_finish(self, run: RunInfo, call: ToolCall) -> None: ...

    with pytest.raises(ConfigurationError, match=r"on_tool_finish.*hook methods are"):
        Agent(two_step_model(), hooks=Typo())
    with pytest.raises(ConfigurationError, match="not a hook object"):
        Agent(two_step_model(), hooks=[object()])


# --- deps_type ---------------------------------------------------------------------------


@dataclass
class Shop:
    stock: dict[str, int]


@tool
def count(context: ToolContext[Shop], item: str) -> int:
    """How many of an item are in stock.

    Args:
        item: the item
    """
    return context.deps.stock.get(item, 0)


def count_model() -> ScriptedModel:
    return ScriptedModel([ToolCall(name="count", arguments={"item": "pen"}), "there are 4"])


async def test_deps_type_without_deps_fails_at_run_start() -> None:
    model = count_model()
    agent = Agent(model, [count], deps_type=Shop)
    with pytest.raises(ConfigurationError) as info:
        await agent.run("how many pens?")
    assert "deps_type=Shop" in str(info.value) and "count" in str(info.value)
    assert "deps=Shop(...)" in str(info.value)
    assert model.requests == []  # nothing reached the model
    with pytest.raises(ConfigurationError, match="deps of type dict"):
        await agent.run("how many pens?", deps={"pen": 4})
    with pytest.raises(ConfigurationError, match="no deps"):
        async for _ in agent.stream("how many pens?"):
            pass


async def test_deps_type_with_deps_runs() -> None:
    result = await Agent(count_model(), [count], deps_type=Shop).run(
        "how many pens?", deps=Shop({"pen": 4})
    )
    assert result.messages[-2].content == "4"


async def test_without_deps_type_the_tool_error_goes_to_the_model_as_before() -> None:
    result = await Agent(count_model(), [count]).run("how many pens?")
    assert result.messages[-2].is_error and "AttributeError" in result.messages[-2].content


async def test_deps_type_does_not_matter_when_no_tool_takes_a_context() -> None:
    result = await Agent(two_step_model(), [add], deps_type=Shop).run("1+2?")
    assert result.output == "3"
