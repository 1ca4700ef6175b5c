"""MCP input schemas -> agentkit parameters: every construct real servers send, and refusals."""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
import pytest
from mcp_servers import CONSTRUCT_SCHEMAS, UNEXPRESSIBLE_SCHEMAS

from agentkit._schema import compact_json_schema
from agentkit.errors import ToolDefinitionError
from agentkit.mcp import MCPSchemaError
from agentkit.mcp._convert import parameters_for, result_text, seed_problems, tool_name


def convert(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    spec = types.Tool(name=name, description="A tool.", input_schema=schema)
    return parameters_for(spec, name=tool_name(name, None), description="A tool.", server="test")


def keywords(schema: Any) -> set[str]:
    """Every JSON Schema keyword used in ``schema`` (property names are not keywords)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    found |= keywords(sub)
            else:
                found |= keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= keywords(item)
    return found


@pytest.mark.parametrize("name", sorted(CONSTRUCT_SCHEMAS))
def test_every_construct_becomes_a_definition_the_seed_schema_accepts(name: str) -> None:
    parameters = convert(name, CONSTRUCT_SCHEMAS[name])
    assert not keywords(parameters) & {"$ref", "$defs", "definitions", "title"}
    assert '"null"' not in json.dumps(parameters)
    for prop in parameters["properties"].values():
        assert isinstance(prop["type"], str)
        assert prop["description"].strip()
    definition = {
        "type": "function",
        "function": {"name": name, "description": "d", "parameters": parameters},
    }
    assert seed_problems(definition) == []


def test_refs_are_inlined_with_their_detail() -> None:
    parameters = convert("create_ticket", CONSTRUCT_SCHEMAS["create_ticket"])
    reporter = parameters["properties"]["reporter"]
    assert reporter["type"] == "object"
    assert reporter["properties"]["email"] == {"type": "string", "format": "email"}
    assert reporter["required"] == ["name"]
    # a description made from the name and the shape, since the server gave none
    assert reporter["description"] == "Reporter: an object with name, email."
    priority = parameters["properties"]["priority"]
    assert priority["enum"] == ["low", "high"] and priority["default"] == "low"
    assert parameters["required"] == ["title", "reporter"]
    assert parameters["properties"]["title"]["description"] == "Short summary."


def test_nullable_unions_collapse_and_titles_become_descriptions() -> None:
    props = convert("search_docs", CONSTRUCT_SCHEMAS["search_docs"])["properties"]
    assert props["limit"] == {
        "type": "integer",
        "description": "Limit: a whole number.",
        "minimum": 1,
    }
    assert props["since"] == {
        "type": "string",
        "description": "Since: a date (YYYY-MM-DD).",
        "format": "date",
    }


def test_a_title_that_says_more_than_the_name_is_kept() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "title": "Search terms"}}}
    assert convert("find", schema)["properties"]["q"]["description"] == "Search terms: text."


def test_one_of_keeps_its_variants_under_one_type() -> None:
    prop = convert("set_timer", CONSTRUCT_SCHEMAS["set_timer"])["properties"]["duration"]
    assert prop["type"] == "string"  # the type that covers both: text
    assert prop["oneOf"] == [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+[smh]$"}]
    assert prop["description"] == "Seconds, or text like 5m."


def test_missing_properties_or_type_mean_no_parameters() -> None:
    empty = {"type": "object", "properties": {}, "required": []}
    assert convert("ping", {"type": "object"}) == empty
    assert convert("now", {}) == empty


def test_a_type_list_at_the_top_that_allows_an_object_is_an_object() -> None:
    schema = {"type": ["object", "null"], "properties": {"q": {"type": "string"}}}
    assert list(convert("find", schema)["properties"]) == ["q"]


def test_a_recursive_ref_stops_at_a_plain_object() -> None:
    root = convert("make_tree", CONSTRUCT_SCHEMAS["make_tree"])["properties"]["root"]
    assert root["properties"]["children"]["items"] == {"type": "object"}


def test_all_of_is_merged() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}},
        ]
    }
    parameters = convert("merged", schema)
    assert set(parameters["properties"]) == {"a", "b"} and parameters["required"] == ["a"]


@pytest.mark.parametrize(
    ("name", "construct"),
    [
        ("either_shape", "top-level oneOf"),
        ("remote_ref", "a $ref to 'https://example.com/schemas/x.json' at /properties/x"),
        ("dangling_ref", "a $ref to '#/$defs/Missing' at /properties/x that points to nothing"),
        ("array_args", "type 'array' at the top"),
    ],
)
def test_a_schema_that_cannot_be_expressed_is_refused_with_the_tool_construct_and_a_way_out(
    name: str, construct: str
) -> None:
    with pytest.raises(MCPSchemaError) as info:
        convert(name, UNEXPRESSIBLE_SCHEMAS[name])
    message = str(info.value)
    assert f"tool '{name}'" in message
    assert construct in message
    assert f"exclude=[{name!r}]" in message and f"--mcp-exclude {name!r}" in message
    assert info.value.tool_name == name and info.value.server == "test"
    assert isinstance(info.value, ToolDefinitionError)


def test_compact_json_schema_does_not_change_its_input() -> None:
    schema = json.loads(json.dumps(CONSTRUCT_SCHEMAS["create_ticket"]))
    before = json.dumps(schema, sort_keys=True)
    compact_json_schema(schema, tool_name="t")
    assert json.dumps(schema, sort_keys=True) == before


@pytest.mark.parametrize(
    ("server_name", "prefix", "expected"),
    [
        ("read_file", None, "read_file"),
        ("files.read", None, "files_read"),
        ("read", "fs", "fs_read"),
        ("9lives", None, "_9lives"),
        ("x" * 80, "p", "p_" + "x" * 62),
    ],
)
def test_tool_names_are_made_safe_for_every_backend(
    server_name: str, prefix: str | None, expected: str
) -> None:
    assert tool_name(server_name, prefix) == expected


@pytest.mark.parametrize(
    ("content", "structured", "expected"),
    [
        # an SDK server wraps a plain value as {"result": ...} next to the same text
        (["the answer"], {"result": "the answer"}, "the answer"),
        (["42"], {"result": 42}, "42"),
        # the same JSON, pretty-printed: said once, compactly
        (['{\n  "a": 1\n}'], {"a": 1}, '{"a":1}'),
        # structured content that says something else, or alone: added as JSON
        (["summary"], {"rows": [1, 2]}, 'summary\n{"rows":[1,2]}'),
        ([], {"rows": []}, '{"rows":[]}'),
        ([], None, "(no output)"),
    ],
)
def test_structured_content_is_said_once(
    content: list[str], structured: Any, expected: str
) -> None:
    result = types.CallToolResult(
        content=[types.TextContent(text=t) for t in content], structured_content=structured
    )
    assert result_text(result) == expected
