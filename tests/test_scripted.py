"""Offline models: scripted replies, function replies, recording, streaming, running out."""

from __future__ import annotations

import pytest

from agentkit.messages import Message, ModelResponse, ResponseDone, TextDelta, ToolCall
from agentkit.settings import ModelSettings
from agentkit.testing import FunctionModel, ScriptedModel, ScriptExhaustedError
from agentkit.tools import tool


@tool
def ping() -> str:
    """Ping."""
    return "pong"


async def test_replies_are_coerced_and_requests_recorded() -> None:
    calls = [ToolCall(name="ping"), ToolCall(name="ping")]
    model = ScriptedModel(["hello", ToolCall(name="ping"), calls, ModelResponse(text="x")])
    history = [Message.user("hi")]
    settings = ModelSettings(temperature=0)

    first = await model.request(history, [ping], settings)
    assert first.text == "hello" and first.tool_calls == [] and first.finish_reason == "stop"
    second = await model.request(history, [ping])
    assert [c.name for c in second.tool_calls] == ["ping"]
    assert second.finish_reason == "tool_calls"
    assert len((await model.request(history, [])).tool_calls) == 2
    assert (await model.request(history, [])).text == "x"

    assert len(model.requests) == 4 and model.remaining == 0
    assert model.requests[0].settings is settings
    assert model.requests[0].tool_names == ["ping"]
    history.append(Message.user("later"))
    assert len(model.requests[0].messages) == 1  # a snapshot, not the live list


async def test_running_out_names_how_many_replies_were_given() -> None:
    model = ScriptedModel(["only one"])
    await model.request([Message.user("a")], [])
    with pytest.raises(ScriptExhaustedError, match="given 1 replies and got request 2") as info:
        await model.request([Message.user("again?")], [])
    assert "again?" in str(info.value)


async def test_exceptions_are_raised_in_turn() -> None:
    model = ScriptedModel([RuntimeError("boom"), "after"])
    with pytest.raises(RuntimeError, match="boom"):
        await model.request([], [])
    assert (await model.request([], [])).text == "after"


async def test_bad_reply_is_rejected_with_what_is_allowed() -> None:
    model = ScriptedModel([[1, 2]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a str, a ToolCall"):
        await model.request([], [])


async def test_stream_splits_text_and_ends_with_the_response() -> None:
    text = "The quick brown fox jumps over the lazy dog, twice."
    model = ScriptedModel([text, ToolCall(name="ping")])
    events = [e async for e in model.stream([], [])]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == text
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == text
    events = [e async for e in model.stream([], [ping])]
    assert len(events) == 1 and isinstance(events[0], ResponseDone)
    assert events[0].response.tool_calls[0].name == "ping"


async def test_function_model_sync_and_async() -> None:
    def sync_reply(messages: list[Message], tools: list[object]) -> str:
        return f"{len(messages)} messages, {len(tools)} tools"

    async def async_reply(messages: list[Message], tools: list[object]) -> ToolCall:
        return ToolCall(name="ping")

    model = FunctionModel(sync_reply)
    assert (await model.request([Message.user("a")], [ping])).text == "1 messages, 1 tools"
    assert len(model.requests) == 1
    streamed = [e async for e in FunctionModel(async_reply, record=False).stream([], [])]
    assert isinstance(streamed[-1], ResponseDone)
    assert streamed[-1].response.tool_calls[0].name == "ping"
