"""Property tests the other suites leave out.

- ``test_sse.py`` re-chunks raw SSE bytes into the same events; here whole model streams, cut
  anywhere, must give the same *response* (text, calls, usage), also over a real socket.
- ``test_textcalls.py`` shows the parser never raises; here calls written in each format with
  arbitrary JSON arguments come back exactly.
- ``test_tool_properties.py`` fuzzes ``Tool.validate``; here arbitrary JSON goes through the
  wire parsing and a whole agent run: no unhandled exception, every call answered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import keyword
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.agent import Agent
from agentkit.messages import Message, ModelResponse, ToolCall
from agentkit.models._sse import SSEDecoder, StreamAccumulator
from agentkit.models._textcalls import build_response, normalize_calls, recover_tool_calls
from agentkit.testing import FunctionModel
from agentkit.testing_server import Reply, WireServer
from agentkit.tools import tool


@tool
def get_weather(city: str, days: int = 1) -> str:
    """The weather.

    Args:
        city: the city
        days: how many days
    """
    return f"sunny in {city} for {days} days"


@tool
def note(text: str, tags: list[str] | None = None) -> str:
    """Save a note.

    Args:
        text: the note
        tags: labels
    """
    return "saved"


TOOLS = [get_weather, note]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
# Parameter names are Python identifiers, never keywords (``or``, ``in``...).
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
arguments = st.dictionaries(identifiers, json_values, max_size=4)


# --- streams cut anywhere ----------------------------------------------------------------------


@st.composite
def model_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Workers AI stream chunks: text pieces, call fragments by index, late usage and finish."""
    chunks: list[dict[str, Any]] = [
        {"response": piece, "p": "abc"} for piece in draw(st.lists(st.text(max_size=6), max_size=5))
    ]
    for index in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["get_weather", "note"]))
        args = json.dumps(draw(arguments))
        chunks.append(
            {
                "tool_calls": [
                    {
                        "id": f"c{index}",
                        "type": "function",
                        "index": index,
                        "function": {"name": name},
                    }
                ]
            }
        )
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
        for a, b in itertools.pairwise([0, *cuts, len(args)]):
            chunks.append({"tool_calls": [{"index": index, "function": {"arguments": args[a:b]}}]})
    chunks.append({"response": "", "tool_calls": [], "p": "x"})
    chunks.append({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    chunks.append({"response": "", "finish_reason": draw(st.sampled_from(["stop", "tool_calls"]))})
    return chunks  # fmt: skip


def encode(chunks: list[dict[str, Any]]) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


def read(pieces: list[bytes]) -> tuple[list[str], ModelResponse]:
    """The text deltas and the response a stream cut into ``pieces`` gives."""
    decoder, acc, deltas = SSEDecoder(), StreamAccumulator(), []
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.flush()
    assert events[-1].data == "[DONE]"
    for event in events[:-1]:
        delta = acc.feed(json.loads(event.data))
        if delta:
            deltas.append(delta)
    response = build_response(
        text=acc.text, raw_calls=acc.wire_calls(), usage=acc.usage,
        finish_reason=acc.finish_reason, tools=TOOLS, max_tokens=None, model_name="m", raw=None,
    )  # fmt: skip
    return deltas, response


def comparable(response: ModelResponse) -> Any:
    return (response.text, [(c.id, c.name, c.arguments) for c in response.tool_calls],
            response.usage, response.finish_reason)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(chunks=model_streams(), data=st.data())
def test_a_model_stream_cut_anywhere_gives_the_same_response(
    chunks: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = encode(chunks)
    whole_deltas, whole = read([body])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=20)))
    pieces = [body[a:b] for a, b in itertools.pairwise([0, *cuts, len(body)])]
    deltas, response = read(pieces)
    assert comparable(response) == comparable(whole)
    assert "".join(deltas) == "".join(whole_deltas)
    assert comparable(read([bytes([b]) for b in body])[1]) == comparable(whole)


@pytest.mark.parametrize("write_size", [1, 3, 7, 64, None])
async def test_over_a_socket_any_write_size_gives_the_same_run(write_size: int | None) -> None:
    """The same replies, written in pieces of any size, give the same transcript."""
    replies = [
        Reply.calls(("get_weather", {"city": "Zürich ☀", "days": 3}), text="Let me check.", chunk_chars=3),
        Reply.calls(("note", {"text": "multi\nline \"quoted\"", "tags": ["a", "b"]}), shape="legacy"),
        Reply.answer("Done: sunny — saved. ✓", chunk_chars=2),
    ]  # fmt: skip
    for reply in replies:
        reply.write_size = write_size
    from agentkit.models import WorkersAI

    with WireServer(replies) as server:
        async with WorkersAI(
            account_id="a", api_token="tok-0123456789", base_url=server.base_url
        ) as model:
            events = [e async for e in Agent(model, TOOLS).stream("go")]
        assert server.violations == []
    result = events[-1].result  # type: ignore[union-attr]
    assert result.output == "Done: sunny — saved. ✓"
    assert [(m.role, m.content, [(c.name, c.arguments) for c in m.tool_calls]) for m in result.messages] == [
        ("user", "go", []),
        ("assistant", "Let me check.", [("get_weather", {"city": "Zürich ☀", "days": 3})]),
        ("tool", "sunny in Zürich ☀ for 3 days", []),
        ("assistant", "", [("note", {"text": "multi\nline \"quoted\"", "tags": ["a", "b"]})]),
        ("tool", "saved", []),
        ("assistant", "Done: sunny — saved. ✓", []),
    ]  # fmt: skip


# --- calls written as text ---------------------------------------------------------------------


def python_literal(value: Any) -> str:
    """``value`` as Python source (JSON null/true/false spelled the Python way)."""
    return repr(value)


FORMATS = {
    "json": lambda n, a: json.dumps({"name": n, "parameters": a}),
    "json-arguments": lambda n, a: json.dumps({"name": n, "arguments": a}),
    "python-tag": lambda n, a: "<|python_tag|>" + json.dumps({"name": n, "parameters": a}) + "<|eom_id|>",
    "fenced": lambda n, a: "```json\n" + json.dumps({"name": n, "parameters": a}, indent=2) + "\n```",
    "function-tag": lambda n, a: f"<function={n}>{json.dumps(a)}</function>",
    "pythonic": lambda n, a: "[" + n + "(" + ", ".join(f"{k}={python_literal(v)}" for k, v in a.items()) + ")]",
}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(args=arguments, name=st.sampled_from(["get_weather", "note"]))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_calls_written_in_any_format_come_back_exactly(
    fmt: str, args: dict[str, Any], name: str
) -> None:
    text = FORMATS[fmt](name, args)
    calls, rest = recover_tool_calls(text, TOOLS)
    assert [(c.name, c.arguments) for c in calls] == [(name, args)], text
    assert rest.strip() == ""


# --- arbitrary JSON where calls and arguments go ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(raw=json_values | st.lists(json_values, max_size=4))
def test_any_json_as_tool_calls_is_read_without_error(raw: Any) -> None:
    calls = normalize_calls(raw)
    assert all(isinstance(c.arguments, dict) and c.name for c in calls)
    assert len({c.id for c in calls}) == len(calls)
    acc = StreamAccumulator()
    acc.feed({"tool_calls": raw})
    acc.feed(raw)
    normalize_calls(acc.wire_calls())


wire_arguments = (
    json_values
    | arguments
    | json_values.map(json.dumps)
    | arguments.map(json.dumps)
    | st.fixed_dictionaries({"city": json_values, "days": json_values})
    | st.fixed_dictionaries({"text": json_values, "tags": json_values})
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["get_weather", "note", "nope"]), wire_arguments),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_a_run_fed_arbitrary_arguments_answers_every_call(
    turns: list[list[tuple[str, Any]]],
) -> None:
    script = iter(turns)

    def reply(messages: list[Message], tools: Any) -> Any:
        turn = next(script, None)
        if turn is None:
            return "finished"
        raw = [{"name": name, "arguments": args} for name, args in turn]
        return normalize_calls(raw)

    agent = Agent(FunctionModel(reply), TOOLS, retries=10, max_steps=10)
    result = asyncio.run(agent.run("go"))
    assert result.output == "finished"
    ids = [c.id for m in result.messages for c in m.tool_calls]
    answers = [m.tool_call_id for m in result.messages if m.role == "tool"]
    assert sorted(answers) == sorted(ids) and len(set(ids)) == len(ids)
    for message in result.messages:
        if message.role == "tool" and message.is_error:
            assert message.content  # every failure says something to the model
    assert isinstance(result.messages[1].tool_calls[0], ToolCall)
