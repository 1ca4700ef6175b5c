"""Tool validation and invocation: lenient inputs, errors for the model, running, context."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import threading
import time
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from tool_corpus import CORPUS, Case, Color, Person, Point

from agentkit.errors import (
    ConfigurationError,
    ToolArgumentsError,
    ToolError,
    ToolExecutionError,
    ToolTimeoutError,
)
from agentkit.messages import Message, ToolResult, Usage
from agentkit.tools import Tool, ToolContext, to_content, tool

IDS = [case.fn.__name__ for case in CORPUS]


def by_name(name: str) -> Tool:
    return tool(next(c.fn for c in CORPUS if c.fn.__name__ == name))


EXPECTED_CONTENT = {
    "google_style": "Paris:2",
    "numpy_style": '["tea","tea"]',
    "rest_style": "/tmp:True",
    "no_docstring": '{"item_id":7,"verbose":false}',
    "annotated_field": "a b",
    "field_as_default": "4",
    "optional_params": "Ada/None/36",
    "optional_no_default": "'hi'",
    "mixed_union": "3",
    "enum_param": "green:2",
    "list_param": "6",
    "tuple_param": "1-a",
    "set_param": '["a","b"]',
    "dict_param": "3.5",
    "model_param": "Ada:36",
    "recursive_model": "2",
    "dataclass_param": "25.0",
    "typeddict_param": "3",
    "datetime_params": "2024-05-01T10:00:00|2024-05-02|09:30:00|86400.0",
    "uuid_path_decimal": "12345678-1234-5678-1234-567812345678|a.txt|9.99",
    "var_args": "hello world",
    "var_kwargs": "T|lang=en",
    "positional_only": "12",
    "with_context": "?",
    "async_tool": '{"url":"https://example.com","retries":0}',
    "no_params": "12:00",
}


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
async def test_corpus_round_trip(case: Case) -> None:
    t = tool(case.fn)
    validated = t.validate(case.args)
    assert set(validated) >= set(case.args)
    # The same arguments as JSON text, as newer Workers AI replies send them.
    assert t.validate(json.dumps(case.args)) == validated
    result = await t.run(case.args)
    assert isinstance(result, ToolResult)
    assert result.name == t.name
    assert not result.is_error
    if case.fn.__name__ in EXPECTED_CONTENT:
        assert result.content == EXPECTED_CONTENT[case.fn.__name__]


def test_tool_is_still_the_function() -> None:
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(add, Tool)
    assert add(2, b=3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__wrapped__(1) == 2  # type: ignore[attr-defined]
    assert add.function is add.__wrapped__  # type: ignore[attr-defined]
    assert not add.is_async
    assert repr(add) == "Tool(name='add', parameters=['a', 'b'])"


def test_decorator_with_options_and_from_function() -> None:
    def ping() -> str:
        return "pong"

    t = tool(timeout=2, max_retries=0, requires_approval=True, sequential=True)(ping)
    assert (t.timeout, t.max_retries, t.requires_approval, t.sequential) == (2.0, 0, True, True)
    plain = Tool.from_function(ping)
    assert (plain.timeout, plain.max_retries, plain.requires_approval, plain.sequential) == (
        None,
        None,
        False,
        False,
    )
    again = tool(plain, name="ping_again")
    assert again.function is ping and again.name == "ping_again"


# --- lenient validation ------------------------------------------------------------------------


def test_scalars_sent_as_strings() -> None:
    t = by_name("bool_and_float")
    assert t.validate({"enabled": "true", "ratio": "0.75"}) == {"enabled": True, "ratio": 0.75}
    assert t.validate({"enabled": "False"}) == {"enabled": False}
    assert by_name("google_style").validate({"city": "Oslo", "days": "3"})["days"] == 3
    assert by_name("enum_param").validate({"color": "red", "priority": "2"})["priority"] == 2


def test_objects_and_arrays_sent_as_json_text() -> None:
    assert by_name("list_param").validate({"numbers": "[1, 2, 3]"}) == {"numbers": [1, 2, 3]}
    person = by_name("model_param").validate({"person": '{"name": "Ada", "age": "36"}'})["person"]
    assert isinstance(person, Person) and person.age == 36
    point = by_name("dataclass_param").validate({"point": ' {"x": 1} '})["point"]
    assert point == Point(x=1.0, y=0.0)
    # Text that is not JSON is left alone and reported.
    with pytest.raises(ToolArgumentsError, match="numbers: expected a list of whole numbers"):
        by_name("list_param").validate({"numbers": "1, 2, 3"})


def test_json_text_is_not_decoded_for_text_parameters() -> None:
    t = by_name("mixed_union")  # accepts text: "[1]" stays a string
    assert t.validate({"key": "[1]"}) == {"key": "[1]"}


def test_null_for_optional_and_defaulted_arguments() -> None:
    t = by_name("optional_params")
    assert t.validate({"name": "Ada", "nickname": None, "age": None}) == {
        "name": "Ada",
        "nickname": None,
        "age": None,
    }
    # null for a parameter with a (non-None) default means "use the default".
    assert by_name("google_style").validate({"city": "Rome", "days": None}) == {"city": "Rome"}
    # ``X | None`` without a default is passed as None when left out.
    assert by_name("optional_no_default").validate({}) == {"note": None}
    with pytest.raises(ToolArgumentsError, match="city: expected text, got null"):
        by_name("google_style").validate({"city": None})


def test_whole_arguments_as_json_text_or_nothing() -> None:
    t = by_name("google_style")
    assert t.validate('{"city": "Lima", "days": "2"}') == {"city": "Lima", "days": 2}
    assert by_name("no_params").validate(None) == {}
    assert by_name("no_params").validate("") == {}
    assert by_name("no_params").validate("  ") == {}


def test_validate_does_not_touch_the_input() -> None:
    t = by_name("list_param")
    args = {"numbers": "[1, 2]"}
    t.validate(args)
    assert args == {"numbers": "[1, 2]"}
    args2: dict[str, Any] = {"city": "X", "days": None}
    by_name("google_style").validate(args2)
    assert args2 == {"city": "X", "days": None}


def test_enum_and_literal_values() -> None:
    assert by_name("enum_param").validate({"color": "green"})["color"] is Color.GREEN
    with pytest.raises(ToolArgumentsError) as info:
        by_name("literal_param").validate({"unit": "kelvin"})
    assert info.value.errors == [
        {
            "field": "unit",
            "expected": 'one of "celsius", "fahrenheit"',
            "got": '"kelvin"',
            "message": 'unit: expected one of "celsius", "fahrenheit", got "kelvin"',
        }
    ]


# --- errors written for the model -------------------------------------------------------------


def test_unknown_arguments_list_the_allowed_names() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("google_style").validate({"town": "Paris", "city": "Paris"})
    err = info.value
    assert err.tool_name == "google_style"
    assert str(err) == (
        "Invalid arguments for tool 'google_style':\n"
        "- town: unknown argument; allowed arguments: city, days\n"
        "Call google_style again with corrected arguments."
    )
    assert err.errors[0]["field"] == "town"
    assert err.errors[0]["expected"] == "one of: city, days"


def test_missing_required_arguments_are_named() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("epydoc_style").validate({})
    assert [e["field"] for e in info.value.errors] == ["amount", "currency"]
    text = str(info.value)
    assert "- amount: missing (required); expected a number" in text
    assert "- currency: missing (required); expected text" in text
    assert all(e["got"] == "nothing" for e in info.value.errors)


def test_each_bad_field_says_expected_and_got() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("constraints").validate({"username": "Ab", "score": "high", "tags": [1, 2, 3, 4]})
    messages = [e["message"] for e in info.value.errors]
    assert 'username: expected string should have at least 3 characters, got "Ab"' in messages
    assert 'score: expected a number, got "high"' in messages
    fields = {e["field"] for e in info.value.errors}
    assert "tags" in fields or "tags[0]" in fields
    for e in info.value.errors:
        assert set(e) == {"field", "expected", "got", "message"}


def test_nested_errors_name_the_path() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("model_param").validate({"person": {"name": "Ada", "age": 200}})
    assert info.value.errors[0]["field"] == "person.age"
    assert "less than or equal to 150" in info.value.errors[0]["expected"]
    assert info.value.errors[0]["got"] == "200"


def test_union_errors_are_one_line_per_field() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("mixed_union").validate({"key": [1]})
    assert [e["message"] for e in info.value.errors] == [
        "key: expected a whole number or text, got [1]"
    ]


def test_arguments_that_are_not_an_object() -> None:
    t = by_name("google_style")
    with pytest.raises(ToolArgumentsError, match="got invalid JSON"):
        t.validate("{city: Paris}")
    with pytest.raises(ToolArgumentsError, match="got JSON list"):
        t.validate("[1, 2]")
    with pytest.raises(ToolArgumentsError, match="got int"):
        t.validate(5)  # type: ignore[arg-type]


def test_long_values_are_cut_and_many_errors_summed_up() -> None:
    @tool
    def many(a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int, i: int, j: int) -> int:
        return a

    with pytest.raises(ToolArgumentsError) as info:
        many.validate({k: "x" * 500 for k in "abcdefghij"})
    text = str(info.value)
    assert len(info.value.errors) == 10
    assert "- ... and 2 more" in text
    assert len(text) < 1200
    assert info.value.errors[0]["got"].endswith("...")


# --- running -------------------------------------------------------------------------------------


async def test_sync_tools_run_in_a_worker_thread_async_in_the_loop() -> None:
    @tool
    def where_sync() -> int:
        return threading.get_ident()

    @tool
    async def where_async() -> int:
        return threading.get_ident()

    assert where_async.is_async and not where_sync.is_async
    here = threading.get_ident()
    assert (await where_async.run({})).value == here
    assert (await where_sync.run({})).value != here


async def test_exceptions_become_tool_execution_errors() -> None:
    @tool
    def divide(a: float, b: float) -> float:
        return a / b

    with pytest.raises(ToolExecutionError) as info:
        await divide.run({"a": 1, "b": 0})
    err = info.value
    assert str(err) == "tool 'divide' failed: ZeroDivisionError: float division by zero"
    assert isinstance(err.original, ZeroDivisionError)
    assert err.__cause__ is err.original
    assert err.tool_name == "divide"


async def test_async_exceptions_and_tool_errors_raised_on_purpose() -> None:
    @tool
    async def lookup(city: str) -> str:
        if city == "Atlantis":
            raise ToolArgumentsError("no such city; try a real one")
        raise KeyError(city)

    with pytest.raises(ToolArgumentsError, match="no such city") as info:
        await lookup.run({"city": "Atlantis"})
    assert info.value.tool_name == "lookup"
    with pytest.raises(ToolExecutionError, match="KeyError: 'Oslo'"):
        await lookup.run({"city": "Oslo"})


async def test_validation_happens_before_running() -> None:
    calls: list[int] = []

    @tool
    def record(n: int) -> None:
        calls.append(n)

    with pytest.raises(ToolArgumentsError):
        await record.run({"n": "many"})
    assert calls == []
    result = await record.run({"n": "4"})
    assert calls == [4]
    assert result.content == "(no output)" and result.value is None


async def test_async_timeout() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    with pytest.raises(ToolTimeoutError) as info:
        await slow.run({})
    assert info.value.timeout == 0.05
    assert str(info.value) == "tool 'slow' timed out after 0.05 s"


async def test_sync_timeout_abandons_the_thread() -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def blocking() -> str:
        release.wait(5)
        return "late"

    try:
        with pytest.raises(ToolTimeoutError):
            await blocking.run({})
    finally:
        release.set()  # let the abandoned thread finish


async def test_a_timeout_error_from_the_function_is_a_failure_not_a_timeout() -> None:
    @tool(timeout=5)
    async def flaky() -> str:
        raise TimeoutError("upstream timed out")

    with pytest.raises(ToolExecutionError, match="TimeoutError: upstream timed out"):
        await flaky.run({})


async def test_context_is_injected() -> None:
    seen: list[ToolContext[dict[str, int]]] = []

    @tool
    async def counter(ctx: ToolContext[dict[str, int]], key: str) -> int:
        seen.append(ctx)
        ctx.add_usage(Usage(requests=1, total_tokens=10))
        return ctx.deps[key]

    ctx = ToolContext(
        deps={"a": 1}, run_id="r1", messages=[Message.user("hi")], tool_call_id="call_1"
    )
    result = await counter.run({"key": "a"}, ctx)
    assert result.value == 1 and result.content == "1"
    assert result.tool_call_id == "call_1"
    assert seen == [ctx]
    assert ctx.usage.total_tokens == 10 and ctx.usage.requests == 1
    with pytest.raises(ToolArgumentsError, match="unknown argument; allowed arguments: key"):
        counter.validate({"key": "a", "ctx": {}})


async def test_missing_context_gets_a_default_one() -> None:
    @tool
    def name_of(ctx: ToolContext[None]) -> str | None:
        return ctx.tool_name

    assert (await name_of.run({})).content == "name_of"


async def test_positional_only_and_variadic_parameters() -> None:
    @tool
    def combine(a: str, /, *rest: int, sep: str = "-", **extra: str) -> str:
        return sep.join([a, *map(str, rest), *(f"{k}={v}" for k, v in sorted(extra.items()))])

    result = await combine.run({"a": "x", "rest": ["1", 2], "extra": {"k": "v"}})
    assert result.content == "x-1-2-k=v"
    assert (await combine.run({"a": "x", "sep": "+"})).content == "x"


async def test_run_validated_skips_validation() -> None:
    t = by_name("google_style")
    assert await t.run_validated(t.validate({"city": "Bern"})) == "Bern:1"


# --- to_content ----------------------------------------------------------------------------------


class Shape(BaseModel):
    name: str
    sides: int


@dataclasses.dataclass
class Pair:
    left: Any
    right: Any


class Mood(enum.Enum):
    HAPPY = "happy"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ('{"already": "json"}', '{"already": "json"}'),
        ('"quoted"', '"quoted"'),
        ({"city": "Zürich", "temp": 21.5}, '{"city":"Zürich","temp":21.5}'),
        ([1, "two", None, True], '[1,"two",null,true]'),
        ((1, 2), "[1,2]"),
        (Shape(name="square", sides=4), '{"name":"square","sides":4}'),
        (Pair(left=Decimal("1.5"), right=[Shape(name="t", sides=3)]), None),
        (None, "(no output)"),
        (42, "42"),
        (3.5, "3.5"),
        (True, "True"),
        (b"bytes \xc3\xa9", "bytes é"),
        (Mood.HAPPY, "happy"),
        ({"when": Literal}, None),
    ],
)
def test_to_content(value: Any, expected: str | None) -> None:
    content = to_content(value)
    assert isinstance(content, str)
    if expected is not None:
        assert content == expected
    else:
        json.loads(content)  # odd values still give valid JSON


def test_tool_error_subclasses() -> None:
    assert issubclass(ToolArgumentsError, ToolError)


def test_unknown_and_bad_arguments_are_reported_together() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        by_name("google_style").validate({"town": "Paris", "days": "two"})
    assert [e["field"] for e in info.value.errors] == ["town", "city", "days"]
    assert str(info.value).splitlines()[1:4] == [
        "- town: unknown argument; allowed arguments: city, days",
        "- city: missing (required); expected text",
        '- days: expected a whole number, got "two"',
    ]


# --- where sync tools run ------------------------------------------------------------------------


async def _thread_ids(t: Tool, n: int) -> list[bool]:
    """For each of n runs: did the function run on the event loop's thread?"""
    here = threading.get_ident()
    return [(await t.run({})).value == here for _ in range(n)]


async def test_quick_sync_tool_moves_to_the_loop_after_three_quick_runs() -> None:
    @tool
    def quick() -> int:
        return threading.get_ident()

    assert await _thread_ids(quick, 5) == [False, False, False, True, True]


async def test_sync_tool_that_blocks_on_the_loop_goes_back_to_threads_for_good() -> None:
    runs = 0

    @tool
    def sometimes_slow() -> int:
        nonlocal runs
        runs += 1
        if runs == 4:
            time.sleep(0.01)  # the first run on the loop is slow
        return threading.get_ident()

    assert await _thread_ids(sometimes_slow, 8) == [False, False, False, True] + [False] * 4


async def test_blocking_option_fixes_where_sync_tools_run() -> None:
    @tool(blocking=True)
    def always_thread() -> int:
        return threading.get_ident()

    @tool(blocking=False)
    def always_loop() -> int:
        return threading.get_ident()

    @tool(timeout=5)
    def with_timeout() -> int:
        return threading.get_ident()

    assert await _thread_ids(always_thread, 5) == [False] * 5
    assert await _thread_ids(always_loop, 2) == [True] * 2
    assert await _thread_ids(with_timeout, 5) == [False] * 5


def test_blocking_false_with_timeout_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"blocking=False .* timeout"):

        @tool(blocking=False, timeout=1)
        def f() -> int:
            return 1
