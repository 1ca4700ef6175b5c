"""Generated tool definitions: shape, descriptions, types, and errors at decoration."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field
from tool_corpus import CORPUS, Case

from agentkit.errors import ConfigurationError, ToolDefinitionError
from agentkit.tools import Tool, ToolContext, tool

SEED = json.loads(
    files("agentkit").joinpath("_data/llama-3.2-3b-instruct.input.schema.json").read_text()
)
TOOL_ITEM_VALIDATOR = jsonschema.Draft202012Validator(
    SEED["oneOf"][1]["properties"]["tools"]["items"]
)
IDS = [case.fn.__name__ for case in CORPUS]


def schema_nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every (sub)schema in ``schema``, walking only keywords that hold schemas."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            for sub in value.values():
                yield from schema_nodes(sub)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            for sub in value:
                yield from schema_nodes(sub)
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            yield from schema_nodes(value)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_definition_matches_workers_ai_schema(case: Case) -> None:
    t = tool(case.fn)
    for style in ("function", "flat"):
        definition = t.definition(style)  # type: ignore[arg-type]
        errors = [e.message for e in TOOL_ITEM_VALIDATOR.iter_errors(definition)]
        assert errors == [], errors
    jsonschema.Draft202012Validator.check_schema(t.parameters)


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_definition_is_compact(case: Case) -> None:
    params = tool(case.fn).parameters
    assert params["type"] == "object"
    assert set(params["required"]) <= set(params["properties"])
    for prop in params["properties"].values():
        assert isinstance(prop["type"], str)
        assert isinstance(prop["description"], str) and prop["description"].strip()
    for node in schema_nodes(params):
        assert "title" not in node
        assert "$ref" not in node
        assert "$defs" not in node
        assert node.get("type") != "null"
    # The definition is plain JSON.
    assert json.loads(json.dumps(params)) == params


@pytest.mark.parametrize("case", [c for c in CORPUS if c.schema_accepts_args], ids=str)
def test_sample_arguments_satisfy_the_schema(case: Case) -> None:
    jsonschema.Draft202012Validator(tool(case.fn).parameters).validate(case.args)


def props(fn: Callable[..., Any]) -> dict[str, Any]:
    result: dict[str, Any] = tool(fn).parameters["properties"]
    return result


def by_name(name: str) -> Callable[..., Any]:
    return next(c.fn for c in CORPUS if c.fn.__name__ == name)


@pytest.mark.parametrize(
    ("name", "param", "expected"),
    [
        ("google_style", "city", 'The city name, e.g. "Paris".'),
        ("numpy_style", "query", "Words to look for."),
        ("rest_style", "recursive", "Include subfolders."),
        ("epydoc_style", "currency", "The three-letter code of its currency."),
        ("annotated_field", "max_words", "Word budget."),
        ("annotated_string", "word", "The word to define."),
        ("field_as_default", "count", "How many."),
        ("var_args", "words", "The words to join."),
        ("var_kwargs", "labels", "Extra labels, by name."),
        ("model_param", "person", "Who to register."),
    ],
)
def test_parameter_descriptions_come_from_docstrings_and_annotations(
    name: str, param: str, expected: str
) -> None:
    assert props(by_name(name))[param]["description"] == expected


def test_tool_description_is_summary_and_body_without_sections() -> None:
    t = tool(by_name("rest_style"))
    assert t.description == "List the files in a folder."
    t = tool(by_name("google_style"))
    assert t.description == "Get the weather forecast for a city."

    def documented(x: int) -> int:
        """Add one.

        Works on any integer.

        Args:
            x: The number.

        Returns:
            The number plus one.
        """
        return x + 1

    assert tool(documented).description == "Add one.\n\nWorks on any integer."


def test_undocumented_parameters_get_a_generated_description() -> None:
    p = props(by_name("no_docstring"))
    assert p["item_id"]["description"] == "Item id: a whole number."
    assert p["verbose"]["description"] == "Verbose: true or false."
    assert props(by_name("literal_param"))["unit"]["description"] == (
        'Unit: one of "celsius", "fahrenheit".'
    )
    assert tool(by_name("no_docstring")).description == "No docstring."


def test_optional_becomes_its_type_and_not_required() -> None:
    t = tool(by_name("optional_params"))
    assert t.parameters["required"] == ["name"]
    assert t.parameters["properties"]["nickname"]["type"] == "string"
    assert t.parameters["properties"]["age"]["type"] == "integer"
    assert "default" not in t.parameters["properties"]["age"]  # no noisy "default": null
    assert tool(by_name("optional_no_default")).parameters["required"] == []


def test_unions_get_the_most_general_type() -> None:
    assert props(by_name("number_union"))["value"] == {
        "type": "number",
        "description": "Value: a whole number or a number.",
    }
    key = props(by_name("mixed_union"))["key"]
    assert key["type"] == "string"
    assert key["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert props(by_name("old_style_union"))["key"]["anyOf"] == key["anyOf"]


def test_enums_literals_and_defaults() -> None:
    p = props(by_name("enum_param"))
    assert p["color"]["enum"] == ["red", "green"] and p["color"]["type"] == "string"
    assert p["priority"]["enum"] == [1, 2] and p["priority"]["type"] == "integer"
    assert p["priority"]["default"] == 1
    lit = props(by_name("literal_numbers"))["level"]
    assert lit["type"] == "integer" and lit["enum"] == [1, 2, 3]
    assert props(by_name("google_style"))["days"]["default"] == 1
    assert props(by_name("literal_param"))["unit"]["default"] == "celsius"


def test_strings_with_a_format() -> None:
    p = props(by_name("datetime_params"))
    assert {k: (v["type"], v["format"]) for k, v in p.items()} == {
        "when": ("string", "date-time"),
        "day": ("string", "date"),
        "at": ("string", "time"),
        "every": ("string", "duration"),
    }
    p = props(by_name("uuid_path_decimal"))
    assert [(v["type"], v["format"]) for v in p.values()] == [
        ("string", "uuid"),
        ("string", "path"),
        ("string", "decimal"),
    ]


def test_constraints_are_carried() -> None:
    p = props(by_name("constraints"))
    assert p["username"]["minLength"] == 3
    assert p["username"]["maxLength"] == 20
    assert p["username"]["pattern"] == "^[a-z]+$"
    assert p["score"]["minimum"] == 0 and p["score"]["exclusiveMaximum"] == 10
    assert p["tags"]["maxItems"] == 3
    assert props(by_name("annotated_field"))["max_words"]["maximum"] == 500


def test_nested_types_are_inlined() -> None:
    person = props(by_name("model_param"))["person"]
    assert person["properties"]["age"] == {"maximum": 150, "minimum": 0, "type": "integer"}
    address = person["properties"]["address"]
    assert address["type"] == "object"
    assert address["properties"]["city"]["description"] == "City name."
    assert address["properties"]["zip_code"]["pattern"] == r"^\d{5}$"
    assert props(by_name("dataclass_param"))["point"]["required"] == ["x"]
    span = props(by_name("typeddict_param"))["span"]
    assert span["properties"] == {"start": {"type": "integer"}, "end": {"type": "integer"}}
    # A recursive model stops at a plain object instead of a $ref.
    tree = props(by_name("recursive_model"))["tree"]
    assert tree["properties"]["children"]["items"] == {"type": "object"}


def test_containers() -> None:
    assert props(by_name("list_param"))["numbers"]["items"] == {"type": "integer"}
    assert props(by_name("set_param"))["tags"]["uniqueItems"] is True
    assert props(by_name("tuple_param"))["pair"]["prefixItems"] == [
        {"type": "integer"},
        {"type": "string"},
    ]
    assert props(by_name("dict_param"))["scores"]["additionalProperties"] == {"type": "number"}


def test_context_and_private_parameters_are_hidden() -> None:
    assert list(props(by_name("with_context"))) == ["key"]
    assert list(props(by_name("private_param"))) == ["query"]

    def optional_context(q: str, ctx: ToolContext[Any] | None = None) -> str:
        return q

    assert list(props(optional_context)) == ["q"]
    assert tool(optional_context).takes_context


def test_a_property_named_title_is_kept() -> None:
    assert list(props(by_name("property_named_title"))) == ["title", "description"]


def test_definition_styles() -> None:
    t = tool(by_name("google_style"))
    flat = t.definition("flat")
    assert flat == {"name": t.name, "description": t.description, "parameters": t.parameters}
    assert t.definition() == {"type": "function", "function": flat}
    t.definition("flat")["name"] = "changed"  # the outer dicts are fresh copies
    assert t.definition("flat")["name"] == "google_style"
    with pytest.raises(ConfigurationError, match="'function' or 'flat'"):
        t.definition("openai")  # type: ignore[arg-type]


def test_name_and_description_overrides() -> None:
    t = tool(name="forecast", description="Weather, briefly.")(by_name("google_style"))
    assert (t.name, t.description) == ("forecast", "Weather, briefly.")
    assert t.definition()["function"]["name"] == "forecast"


# --- definition errors -------------------------------------------------------------------------


def missing_annotation(city, days: int = 1) -> str:  # type: ignore[no-untyped-def]
    return ""


def untyped_default(city: str, days=3) -> str:  # type: ignore[no-untyped-def]
    return ""


def untyped_args(*items) -> str:  # type: ignore[no-untyped-def]
    return ""


def untyped_kwargs(**options) -> str:  # type: ignore[no-untyped-def]
    return ""


class Opaque:
    pass


def opaque_type(thing: Opaque) -> str:
    return ""


def callable_type(callback: Callable[[int], int]) -> str:
    return ""


def private_without_default(q: str, _secret: str) -> str:
    return q


def two_contexts(a: ToolContext[Any], b: ToolContext[Any]) -> str:
    return ""


@pytest.mark.parametrize(
    ("fn", "fragments"),
    [
        (missing_annotation, ["'city'", "no type annotation", "`city: str`"]),
        (untyped_default, ["'days'", "no type annotation", "`days: int = 3`"]),
        (untyped_args, ["'items'", "`*items: str`"]),
        (untyped_kwargs, ["'options'", "`**options: str`"]),
        (opaque_type, ["'thing'", "Opaque", "cannot be expressed in JSON Schema"]),
        (callable_type, ["'callback'", "cannot be expressed in JSON Schema"]),
        (private_without_default, ["'_secret'", "give it a default"]),
        (two_contexts, ["'b'", "second ToolContext"]),
    ],
    ids=lambda v: getattr(v, "__name__", "fragments"),
)
def test_bad_signatures_fail_at_decoration(fn: Callable[..., Any], fragments: list[str]) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(fn)
    text = str(info.value)
    assert f"tool '{fn.__name__}'" in text
    for fragment in fragments:
        assert fragment in text


def test_unresolvable_annotation_is_reported() -> None:
    def uses_local(x: LocalModel) -> str:  # noqa: F821  # type: ignore[name-defined]
        return ""

    with pytest.raises(ToolDefinitionError, match="cannot resolve the type annotations"):
        tool(uses_local)


def test_bad_names_and_options() -> None:
    with pytest.raises(ToolDefinitionError, match="pass name="):
        tool(lambda x: x)
    with pytest.raises(ToolDefinitionError, match="invalid tool name 'has space'"):
        tool(by_name("google_style"), name="has space")
    with pytest.raises(ConfigurationError, match="timeout"):
        tool(by_name("google_style"), timeout=0)
    with pytest.raises(ConfigurationError, match="max_retries"):
        tool(by_name("google_style"), max_retries=-1)
    with pytest.raises(ToolDefinitionError, match="needs a function"):
        Tool(42)  # type: ignore[arg-type]


def test_callable_object_and_partial_with_a_name() -> None:
    import functools

    class Scaler:
        def __call__(self, x: float, factor: float = 2.0) -> float:
            """Scale a number.

            Args:
                x: The number.
            """
            return x * factor

    t = tool(Scaler(), name="scale")
    assert t.parameters["properties"]["x"]["description"] == "The number."

    def power(base: int, exponent: int) -> int:
        return int(base**exponent)

    squared = tool(functools.partial(power, exponent=2), name="square")
    assert squared.parameters["required"] == ["base"]
    assert squared.validate({"base": "3"}) == {"base": 3}


class Options(BaseModel):
    mode: Literal["fast", "slow"] = "fast"


def test_pydantic_model_default_is_shown_as_json() -> None:
    def configure(options: Options = Options(), level: Annotated[int, Field(ge=0)] = 2) -> str:  # noqa: B008
        return options.mode

    p = props(configure)
    assert p["options"]["default"] == {"mode": "fast"}
    assert p["level"]["default"] == 2
