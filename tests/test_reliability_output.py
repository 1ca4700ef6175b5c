"""Bad model output, over the wire: every mistake goes back to the model or ends the run cleanly.

Unknown tools, invalid arguments, arguments as strings, empty answers, a ``response`` of the
wrong type, tool calls hidden in text (every format Llama 3.2 writes), and a model that never
stops calling tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from agentkit.agent import Agent, RunFinished, ToolCallFinished
from agentkit.errors import MaxStepsExceeded, ToolRetriesExceeded
from agentkit.messages import TextDelta
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import tool

PROMPT = "What is stored under a?"


@tool
def lookup(key: str, times: int = 1) -> str:
    """Look up a key.

    Args:
        key: the key to look up
        times: how many copies of the value to return
    """
    return key.upper() * times


def tool_messages(request: WireRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


def answer_from_results(request: WireRequest) -> Reply:
    results = [m["content"] for m in tool_messages(request)]
    return Reply.answer(f"found {results[-1]}", chunk_chars=3)


async def run(agent: Agent[str], stream: bool) -> tuple[str, list[Any], list[str]]:
    """Output, transcript, and the text streamed after the last tool call (the answer)."""
    if not stream:
        result = await agent.run(PROMPT)
        return result.output, result.messages, []
    answer: list[str] = []
    async for event in agent.stream(PROMPT):
        if isinstance(event, TextDelta):
            answer.append(event.text)
        elif isinstance(event, ToolCallFinished):
            answer.clear()
        elif isinstance(event, RunFinished):
            return event.result.output, event.result.messages, answer
    raise AssertionError("no RunFinished event")


@pytest.fixture(params=[False, True], ids=["run", "stream"])
def stream(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# --- mistakes in calls go back to the model ------------------------------------------------

WRONG_CALLS = {
    "unknown tool": (
        Reply.calls(("delete_everything", {"key": "a"})),
        "There is no tool named 'delete_everything'. Available tools: lookup.",
    ),
    "wrong argument type": (
        Reply.calls(("lookup", {"key": "a", "times": "many"})),
        "times",
    ),
    "missing argument": (Reply.calls(("lookup", {"times": 2})), "key"),
    "unknown argument": (Reply.calls(("lookup", {"key": "a", "colour": "red"})), "colour"),
    "arguments not JSON": (
        Reply.calls(
            {"id": "x1", "type": "function", "function": {"name": "lookup", "arguments": "key=a"}}
        ),
        "key",
    ),
    "arguments a JSON list": (
        Reply.calls({"name": "lookup", "arguments": ["a"]}, shape="legacy"),
        "key",
    ),
}


@pytest.mark.parametrize("case", list(WRONG_CALLS))
async def test_a_wrong_call_is_explained_and_the_model_can_fix_it(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
    case: str,
) -> None:
    wrong, explanation = WRONG_CALLS[case]
    wire.add(wrong, Reply.calls(("lookup", {"key": "a"})))
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        output, messages, _ = await run(Agent(model, [lookup]), stream)
    assert output == "found A"
    check_transcript(messages, PROMPT, tool_results=2)
    error = messages[2]
    assert error.role == "tool" and error.is_error and explanation in error.content
    # What the model was told is what the server received, as a string result.
    assert tool_messages(wire.requests[1])[0]["content"] == error.content
    assert len(wire.requests) == 3


@pytest.mark.parametrize(
    "arguments",
    [
        '{"key": "a"}',  # the newer shape: a JSON string
        json.dumps(json.dumps({"key": "a"})),  # encoded twice
        "{'key': 'a'}",  # a Python literal
        '  {"key": "a"}  ',
    ],
)
async def test_arguments_sent_as_strings_are_read(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], stream: bool, arguments: str
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}
    wire.add(Reply.calls(call))
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        output, messages, _ = await run(Agent(model, [lookup]), stream)
    assert output == "found A"
    assert messages[1].tool_calls[0].arguments == {"key": "a"}


async def test_a_model_that_keeps_calling_an_unknown_tool_is_stopped(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    wire.default = Reply.calls(("no_such_tool", {}))
    async with workers_ai(wire) as model:
        with pytest.raises(ToolRetriesExceeded, match="no_such_tool") as info:
            await Agent(model, [lookup], retries=2).run(PROMPT)
    assert len(wire.requests) == 3  # the budget: 2 failures tolerated, the third stops
    check_transcript(info.value.messages, PROMPT, tool_results=3)
    assert info.value.usage is not None and info.value.usage.requests == 3


async def test_repeated_server_ids_are_made_unique_across_turns(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    same = {"id": "chatcmpl-tool-1", "type": "function"}
    wire.add(
        Reply.calls(
            {**same, "function": {"name": "lookup", "arguments": '{"key": "a"}'}},
            {**same, "function": {"name": "lookup", "arguments": '{"key": "b"}'}},
        ),
        Reply.calls({**same, "function": {"name": "lookup", "arguments": '{"key": "c"}'}}),
    )
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        result = await Agent(model, [lookup]).run(PROMPT)
    check_transcript(result.messages, PROMPT, tool_results=3)
    sent = wire.requests[-1].messages
    ids = [c["id"] for m in sent for c in m.get("tool_calls", [])]
    assert len(set(ids)) == 3
    assert [m["tool_call_id"] for m in sent if m["role"] == "tool"] == ids


# --- odd answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"response": ""}, ""),
        ({"response": None}, ""),
        ({}, ""),
        ({"response": 42}, "42"),
        ({"response": 2.5}, "2.5"),
        ({"response": {"answer": "A"}}, '{"answer": "A"}'),
        ({"response": ["A", "B"]}, '["A", "B"]'),
        ({"response": True}, "true"),
    ],
    ids=["empty", "null", "missing", "int", "float", "object", "list", "bool"],
)
async def test_answers_of_any_type_end_the_run_as_text(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    result: dict[str, Any],
    expected: str,
) -> None:
    wire.add(Reply(body={"result": result, "success": True, "errors": [], "messages": []}))
    async with workers_ai(wire) as model:
        done = await Agent(model, [lookup]).run(PROMPT)
    assert isinstance(done.output, str)
    assert json.loads(done.output) == json.loads(expected) if expected else done.output == ""
    check_transcript(done.messages, PROMPT, tool_results=0)
    assert done.messages[-1].role == "assistant" and done.messages[-1].content == done.output


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], ""),
        ([{"response": None}, {"response": ""}, {"tool_calls": []}], ""),
        ([{"response": 4}, {"response": 2}], "42"),
        ([{"response": {"a": 1}}], '{"a": 1}'),
        (['"a JSON string"', [1, 2], 7, {"response": "ok"}], "ok"),
    ],
    ids=["no-events", "empty-events", "numbers", "object", "odd-chunks"],
)
async def test_odd_streams_end_the_run_as_text(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], events: list[Any], expected: str
) -> None:
    wire.add(Reply(events=events))
    async with workers_ai(wire) as model:
        output, messages, shown = await run(Agent(model, [lookup]), stream=True)
    assert output == expected and "".join(shown) == expected
    assert messages[-1].content == expected


# --- calls hidden in text --------------------------------------------------------------------

TEXT_CALLS = {
    "json-parameters": '{"name": "lookup", "parameters": {"key": "a"}}',
    "json-arguments": '{"name": "lookup", "arguments": {"key": "a"}}',
    "json-arguments-string": '{"name": "lookup", "arguments": "{\\"key\\": \\"a\\"}"}',
    "python-tag": '<|python_tag|>{"name": "lookup", "parameters": {"key": "a"}}<|eom_id|>',
    "eot": '{"type": "function", "name": "lookup", "parameters": {"key": "a"}}<|eot_id|>',
    "fenced": '```json\n{"name": "lookup", "parameters": {"key": "a"}}\n```',
    "json-list": '[{"name": "lookup", "parameters": {"key": "a"}}]',
    "prose-then-json": 'Let me check.\n{"name": "lookup", "parameters": {"key": "a"}}',
    "pythonic-list": "[lookup(key='a')]",
    "pythonic-bare": 'lookup(key="a")',
    "pythonic-positional": "[lookup('a')]",
    "function-tag": '<function=lookup>{"key": "a"}</function>',
}


@pytest.mark.parametrize("fmt", list(TEXT_CALLS))
async def test_calls_hidden_in_text_are_run_and_not_shown_as_the_answer(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
    fmt: str,
) -> None:
    wire.add(Reply.answer(TEXT_CALLS[fmt], chunk_chars=5))
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        output, messages, shown = await run(Agent(model, [lookup]), stream)
    assert output == "found A"
    assert messages[1].tool_calls[0].name == "lookup"
    assert messages[1].tool_calls[0].arguments == {"key": "a"}
    check_transcript(messages, PROMPT, tool_results=1)
    if stream:
        assert "".join(shown) == "found A"
    # The call goes back to the server as a structured call, valid for the schema.
    sent = wire.requests[1].messages[1]
    assert sent["tool_calls"][0]["function"]["name"] == "lookup"


async def test_several_calls_in_one_text(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    wire.add(Reply.answer("[lookup(key='a'), lookup(key='b', times=2)]"))
    wire.handler = lambda r: Reply.answer(
        " ".join(m["content"] for m in tool_messages(r)), chunk_chars=2
    )
    async with workers_ai(wire) as model:
        result = await Agent(model, [lookup]).run(PROMPT)
    assert result.output == "A BB"
    check_transcript(result.messages, PROMPT, tool_results=2)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "delete_everything", "parameters": {}}',
        "[remove(path='/')]",
        '<function=shell>{"cmd": "ls"}</function>',
        "Use lookup(key) to find things.",
    ],
)
async def test_text_naming_tools_that_are_not_offered_is_an_answer(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], stream: bool, text: str
) -> None:
    wire.add(Reply.answer(text, chunk_chars=4))
    async with workers_ai(wire) as model:
        output, _messages, shown = await run(Agent(model, [lookup]), stream)
    assert output == text and len(wire.requests) == 1
    if stream:
        assert "".join(shown) == text


# --- a model that never stops calling tools ----------------------------------------------------


async def test_endless_tool_calls_stop_at_max_steps_with_the_transcript(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
) -> None:
    wire.default = Reply.calls(("lookup", {"key": "a"}))
    async with workers_ai(wire) as model:
        with pytest.raises(MaxStepsExceeded, match="max_steps=4") as info:
            # max_repeats=None: identical calls, so the repeat guard would end the run first.
            await run(Agent(model, [lookup], max_steps=4, max_repeats=None), stream)
    assert len(wire.requests) == 4
    check_transcript(info.value.messages, PROMPT, tool_results=4)
    assert info.value.usage is not None
    assert info.value.usage.requests == 4 and info.value.usage.tool_calls == 4


async def test_endless_tool_calls_with_final_answer_ask_once_more_without_tools(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
) -> None:
    def handler(request: WireRequest) -> Reply:
        if "tools" not in request.body:
            return Reply.answer("best guess: A", chunk_chars=4)
        return Reply.calls(("lookup", {"key": "a"}))

    wire.handler = handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [lookup], max_steps=3, on_max_steps="final_answer")
        output, messages, shown = await run(agent, stream)
    assert output == "best guess: A"
    assert len(wire.requests) == 4 and "tools" not in wire.requests[-1].body
    check_transcript(messages, PROMPT, tool_results=3)
    if stream:
        assert "".join(shown) == output


async def test_a_model_still_calling_tools_in_its_final_answer_is_stopped(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    # Asked for an answer without tools, it sends structured calls anyway.
    wire.default = Reply.calls(("lookup", {"key": "a"}), shape="legacy")
    async with workers_ai(wire) as model:
        agent = Agent(model, [lookup], max_steps=2, on_max_steps="final_answer")
        with pytest.raises(MaxStepsExceeded, match="still called tools") as info:
            await agent.run(PROMPT)
    assert len(wire.requests) == 3
    check_transcript(info.value.messages, PROMPT, tool_results=2)
