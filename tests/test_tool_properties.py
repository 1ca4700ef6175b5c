"""Property tests: whatever JSON a model sends, a tool either accepts it or explains why not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tool_corpus import CORPUS

from agentkit.errors import ToolArgumentsError
from agentkit.tools import Tool, tool

TOOLS: list[Tool] = [tool(case.fn) for case in CORPUS]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def arguments_for(draw: st.DrawFn, t: Tool) -> dict[str, Any]:
    """Mostly the tool's own parameter names, sometimes others, with any JSON values."""
    names = list(t.parameters["properties"])
    keys = draw(
        st.lists(st.sampled_from(names) if names else st.text(max_size=6), max_size=5)
        | st.lists(st.text(max_size=6), max_size=2)
    )
    values: dict[str, Any] = {}
    for key in keys:
        values[key] = draw(
            json_values | json_values.map(lambda v: json.dumps(v)) | st.sampled_from(["3", "true"])
        )
    return values


def outcome(t: Tool, arguments: Any) -> None:
    try:
        t.validate(arguments)
    except ToolArgumentsError as err:
        assert str(err).startswith(f"Invalid arguments for tool '{t.name}':")
        assert err.errors, "every failure lists at least one problem"
        for item in err.errors:
            assert set(item) == {"field", "expected", "got", "message"}
            assert item["message"] in str(err) or len(err.errors) > 8


@pytest.mark.parametrize("t", TOOLS, ids=[t.name for t in TOOLS])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_arguments_are_accepted_or_explained(t: Tool, data: st.DataObject) -> None:
    outcome(t, data.draw(arguments_for(t)))


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=60) | json_values.map(json.dumps))
def test_any_text_as_arguments_is_accepted_or_explained(text: str) -> None:
    for t in TOOLS[:6]:
        outcome(t, text)


@settings(max_examples=50, deadline=None)
@given(city=st.text(min_size=1, max_size=30), days=st.integers(-1000, 1000))
def test_valid_arguments_survive_a_json_round_trip(city: str, days: int) -> None:
    t = TOOLS[0]  # google_style(city: str, days: int = 1)
    direct = t.validate({"city": city, "days": days})
    assert direct == {"city": city, "days": days}
    assert t.validate(json.dumps(direct)) == direct
    assert t.validate({"city": city, "days": str(days)}) == direct
