from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.messages import ToolCall
from agentkit.models._textcalls import (
    build_response,
    normalize_calls,
    parse_arguments,
    recover_tool_calls,
)
from agentkit.tools import tool


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather.

    Args:
        city: City name.
        unit: celsius or fahrenheit.
    """
    return "sunny"


@tool
def get_time(tz: str) -> str:
    """Current time.

    Args:
        tz: Time zone.
    """
    return "noon"


TOOLS = [get_weather, get_time]


def calls_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    calls, _ = recover_tool_calls(text, TOOLS)
    return [(c.name, c.arguments) for c in calls]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>',
        '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
        '```json\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```',
        'Sure! I will look it up.\n{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "[get_weather(city='Paris')]",
        'get_weather(city="Paris")',
        "[get_weather('Paris')]",
        '<function=get_weather>{"city": "Paris"}</function>',
        '{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
    ],
)
def test_recovers_one_call_in_every_known_format(text: str) -> None:
    assert calls_of(text) == [("get_weather", {"city": "Paris"})]


def test_recovers_several_calls_in_order() -> None:
    assert calls_of("[get_weather(city='Paris', unit='fahrenheit'), get_time(tz=\"UTC\")]") == [
        ("get_weather", {"city": "Paris", "unit": "fahrenheit"}),
        ("get_time", {"tz": "UTC"}),
    ]
    assert calls_of(
        '[{"name": "get_time", "parameters": {"tz": "UTC"}}, '
        '{"name": "get_weather", "parameters": {"city": "Rome"}}]'
    ) == [("get_time", {"tz": "UTC"}), ("get_weather", {"city": "Rome"})]
    assert calls_of(
        '{"name": "get_time", "parameters": {"tz": "UTC"}}; '
        '<function=get_weather>{"city": "Oslo"}</function>'
    ) == [("get_time", {"tz": "UTC"}), ("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "delete_files", "parameters": {"path": "/"}}',  # not an offered tool
        "[delete_files(path='/')]",
        '<function=delete_files>{"path": "/"}</function>',
        "get_weather(city)",  # a variable, not a literal: never evaluated
        "get_weather(city=__import__('os').system('true'))",
        "The get_weather tool needs a city.",
        '{"name": "get_weather", "population": 3}',  # an object with a name field, not a call
        "[get_weather(city='Paris', 'x', 'y', 'z')]",
    ],
)
def test_leaves_text_alone_when_it_is_not_an_offered_call(text: str) -> None:
    calls, rest = recover_tool_calls(text, TOOLS)
    assert calls == []
    assert rest == text


def test_remaining_text_drops_calls_tokens_and_fences() -> None:
    calls, rest = recover_tool_calls(
        'Checking now.\n```json\n{"name": "get_time", "parameters": {"tz": "UTC"}}\n```<|eot_id|>',
        TOOLS,
    )
    assert [c.name for c in calls] == ["get_time"]
    assert rest == "Checking now."
    calls, rest = recover_tool_calls("<|python_tag|>[get_time(tz='UTC')]<|eom_id|>", TOOLS)
    assert len(calls) == 1 and rest == ""


def test_each_recovered_call_gets_a_unique_id() -> None:
    calls, _ = recover_tool_calls("[get_time(tz='UTC'), get_time(tz='UTC')]", TOOLS)
    assert len({c.id for c in calls}) == 2


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises_on_arbitrary_text(text: str) -> None:
    calls, rest = recover_tool_calls(text, TOOLS)
    assert isinstance(rest, str)
    assert all(c.name in {"get_weather", "get_time"} for c in calls)


_fragments = st.sampled_from(
    [
        "get_weather(",
        "get_time",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        '"name": ',
        '"get_weather"',
        '"parameters": ',
        "city=",
        "'Paris'",
        ",",
        "<function=get_time>",
        "</function>",
        "<|python_tag|>",
        "```",
        "\\",
        "1e999",
        "lambda: 0",
        "*a",
        "**k",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=5)), max_size=40).map("".join))
def test_parser_never_raises_on_call_like_noise(text: str) -> None:
    calls, rest = recover_tool_calls(text, TOOLS)
    assert isinstance(rest, str)
    for call in calls:
        assert call.name in {"get_weather", "get_time"}
        assert isinstance(call.arguments, dict)


def test_deeply_nested_input_does_not_blow_up() -> None:
    text = "get_weather(" + "[" * 5000 + "]" * 5000 + ")" + '{"a": ' * 3000
    assert recover_tool_calls(text, TOOLS)[0] == []


def test_parse_arguments_accepts_dicts_json_and_double_encoded_json() -> None:
    assert parse_arguments({"a": 1}) == {"a": 1}
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments('"{\\"a\\": 1}"') == {"a": 1}
    assert parse_arguments("{'a': 1}") == {"a": 1}
    assert parse_arguments("") == {}
    assert parse_arguments(None) == {}
    assert parse_arguments("[1, 2]") == {}
    assert parse_arguments("{not json") == {}


def test_normalize_calls_keeps_unique_server_ids_and_replaces_repeats() -> None:
    calls = normalize_calls(
        [
            {"id": "dup", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "dup", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            {"id": "solo", "type": "function", "function": {"name": "c", "arguments": '{"x": 1}'}},
            {"name": "d", "arguments": {"y": 2}},
            {"nonsense": True},
        ]
    )
    assert [c.name for c in calls] == ["a", "b", "c", "d"]
    assert calls[2].id == "solo" and calls[2].arguments == {"x": 1}
    assert "dup" not in {calls[0].id, calls[1].id}
    assert len({c.id for c in calls}) == 4


def test_build_response_prefers_structured_calls_and_reports_cuts() -> None:
    structured = build_response(
        text='{"name": "get_time", "parameters": {"tz": "UTC"}}',
        raw_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        usage={"prompt_tokens": 5, "completion_tokens": 6},
        finish_reason="stop",
        tools=TOOLS,
        max_tokens=100,
        model_name="m",
        raw=None,
    )
    assert [c.name for c in structured.tool_calls] == ["get_weather"]
    assert structured.finish_reason == "tool_calls"
    assert structured.usage.total_tokens == 11 and structured.usage.requests == 1

    cut = build_response(
        text="A long answer that was",
        raw_calls=None,
        usage={"prompt_tokens": 5, "completion_tokens": 100, "total_tokens": 105},
        finish_reason=None,
        tools=[],
        max_tokens=100,
        model_name="m",
        raw=None,
    )
    assert cut.finish_reason == "length"

    recovered = build_response(
        text="[get_time(tz='UTC')]",
        raw_calls=[],
        usage=None,
        finish_reason="stop",
        tools=TOOLS,
        max_tokens=100,
        model_name="m",
        raw=None,
    )
    assert recovered.text is None
    assert recovered.tool_calls[0] == ToolCall(
        id=recovered.tool_calls[0].id, name="get_time", arguments={"tz": "UTC"}
    )

    off = build_response(
        text="[get_time(tz='UTC')]",
        raw_calls=[],
        usage=None,
        finish_reason=None,
        tools=TOOLS,
        max_tokens=None,
        model_name="m",
        raw=None,
        recover=False,
    )
    assert (
        off.tool_calls == [] and off.text == "[get_time(tz='UTC')]" and off.finish_reason == "stop"
    )
