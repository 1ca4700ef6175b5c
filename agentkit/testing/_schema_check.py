"""Check a Workers AI request body against the model's input JSON Schema.

The schema ships with agentkit (``agentkit/_data``). ``jsonschema`` (in the ``test`` extra) does
the check when it is installed; without it a small built-in checker does, so the wire server
works after a plain ``pip install agentkit``. The built-in checker knows the keywords the
shipped schema uses (``type``, ``properties``, ``required``, ``additionalProperties``,
``items``, ``oneOf``/``anyOf``/``allOf``, ``enum``/``const``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``minItems``/``maxItems``) and refuses a schema with any other
validating keyword, so it never passes a body it did not really check.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import Any

__all__ = ["builtin_violations", "input_schema", "schema_violations"]

_SCHEMA_FILE = "_data/llama-3.2-3b-instruct.input.schema.json"

# Keywords that describe and never reject (``format`` is an annotation unless asked for).
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "format", "examples", "$schema", "$id", "$comment"}
)
_KNOWN = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
}

_lock = threading.Lock()
_schema: dict[str, Any] | None = None
_check: Callable[[Any], list[str]] | None = None


def input_schema() -> dict[str, Any]:
    """The Workers AI input schema shipped with agentkit (read once)."""
    global _schema
    with _lock:
        if _schema is None:
            text = resources.files("agentkit").joinpath(_SCHEMA_FILE).read_text("utf-8")
            _schema = json.loads(text)
        return _schema


def _checker() -> Callable[[Any], list[str]]:
    global _check
    if _check is not None:
        return _check
    schema = input_schema()
    try:
        jsonschema = importlib.import_module("jsonschema")
    except ImportError:
        _unknown_keywords(schema)  # fail loudly rather than check part of the schema

        def check(body: Any) -> list[str]:
            return [f"{'/'.join(w) or '/'}: {what[:300]}" for w, what in _errors(schema, body, ())]
    else:
        validator = jsonschema.validators.validator_for(schema)(schema)

        def check(body: Any) -> list[str]:
            return [
                f"{'/'.join(str(p) for p in error.absolute_path) or '/'}: {error.message[:300]}"
                for error in validator.iter_errors(body)
            ]

    _check = check
    return check


def schema_violations(body: Any) -> list[str]:
    """Why ``body`` does not validate against the Workers AI input schema ([] if it does).

    Each problem reads ``"<where>: <what>"`` (``where`` is a ``/``-separated path, ``/`` for the
    whole body).
    """
    return _checker()(body)


# --- the built-in checker ------------------------------------------------------------------------


def _unknown_keywords(schema: Any, where: str = "#") -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where}: a schema must be an object or a boolean")
    unknown = sorted(set(schema) - _KNOWN)
    if unknown:
        raise ValueError(
            f"{where}: the built-in schema check does not know {unknown}; "
            "install jsonschema (pip install jsonschema) to check this schema"
        )
    for key in ("properties",):
        for name, sub in schema.get(key, {}).items():
            _unknown_keywords(sub, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties"):
        if key in schema:
            _unknown_keywords(schema[key], f"{where}/{key}")
    for key in ("oneOf", "anyOf", "allOf"):
        for index, sub in enumerate(schema.get(key, [])):
            _unknown_keywords(sub, f"{where}/{key}/{index}")


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False  # JSON booleans are not numbers
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    return False


def _errors(
    schema: Any, value: Any, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str]]:
    if schema is True:
        return
    if schema is False:
        yield path, "no value is allowed here"
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, k) for k in kinds):
            yield path, f"{_show(value)} is not of type {' or '.join(map(repr, kinds))}"
            return
    if "enum" in schema and value not in schema["enum"]:
        yield path, f"{_show(value)} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        yield path, f"{schema['const']!r} was expected"
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            yield path, f"{value!r} is less than the minimum of {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            yield path, f"{value!r} is greater than the maximum of {schema['maximum']!r}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield path, f"{_show(value)} is shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield path, f"{_show(value)} is longer than {schema['maxLength']} characters"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield path, f"has fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield path, f"has more than {schema['maxItems']} items"
        if "items" in schema:
            for index, item in enumerate(value):
                yield from _errors(schema["items"], item, (*path, str(index)))
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                yield path, f"{name!r} is a required property"
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                yield from _errors(properties[name], item, (*path, name))
            elif extra is False:
                yield path, f"additional property {name!r} is not allowed"
            elif extra is not True:
                yield from _errors(extra, item, (*path, name))
    for sub in schema.get("allOf", []):
        yield from _errors(sub, value, path)
    if "anyOf" in schema and not any(_valid(sub, value, path) for sub in schema["anyOf"]):
        yield path, f"{_show(value)} matches none of the allowed forms (anyOf)"
    if "oneOf" in schema:
        branches = schema["oneOf"]
        matched = [i for i, sub in enumerate(branches) if _valid(sub, value, path)]
        if not matched:
            first = _first_problem(branches, value, path)
            yield path, f"{_show(value)} matches none of the allowed forms (oneOf){first}"
        elif len(matched) > 1:
            names = ", ".join(_branch_name(branches, i) for i in matched)
            yield path, f"{_show(value)} matches more than one allowed form (oneOf): {names}"


def _valid(schema: Any, value: Any, path: tuple[str, ...]) -> bool:
    return next(_errors(schema, value, path), None) is None


def _branch_name(branches: list[Any], index: int) -> str:
    branch = branches[index]
    title = branch.get("title") if isinstance(branch, Mapping) else None
    return str(title) if title else f"#{index}"


def _first_problem(branches: list[Any], value: Any, path: tuple[str, ...]) -> str:
    notes = []
    for index, branch in enumerate(branches):
        found = next(_errors(branch, value, path), None)
        if found is not None:
            where = "/".join(found[0]) or "/"
            notes.append(f"{_branch_name(branches, index)}: {where}: {found[1]}")
    return "; " + "; ".join(notes) if notes else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def builtin_violations(schema: Mapping[str, Any], body: Any) -> list[str]:
    """``body``'s problems against ``schema``, found by the built-in checker (no jsonschema).

    Raises ``ValueError`` when ``schema`` uses a keyword the checker does not know.
    """
    _unknown_keywords(schema)
    return [f"{'/'.join(where) or '/'}: {what[:300]}" for where, what in _errors(schema, body, ())]
