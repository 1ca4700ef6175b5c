"""JSON Schema and validators for tool functions, built once from a signature and a docstring.

Everything here runs at decoration time except :func:`format_validation_error` and the small
helpers it uses, which run when a model sends bad arguments. The schema is shaped for small
models and for the Workers AI input schema: no ``title``, ``$ref``/``$defs`` inlined, ``null``
variants dropped, and every top-level property with one string ``type`` and a ``description``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import json
import re
import textwrap
import typing
from collections.abc import Callable, Iterable, Mapping
from types import NoneType, UnionType
from typing import (
    Annotated,
    Any,
    Literal,
    NoReturn,
    NotRequired,
    Required,
    Union,
    cast,
    get_args,
    get_origin,
)

import pydantic_core
from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter, ValidationError
from pydantic.errors import PydanticInvalidForJsonSchema
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticUndefined, core_schema
from typing_extensions import TypedDict

from .errors import ToolArgumentsError, ToolDefinitionError

__all__ = [
    "FunctionSchema",
    "build_function_schema",
    "compact_json_schema",
    "format_validation_error",
    "humanize",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_MAX_LISTED_ERRORS = 8
_MAX_GOT_CHARS = 60


@dataclasses.dataclass(slots=True)
class FunctionSchema:
    """What a tool needs at run time, computed once per function."""

    name: str
    description: str
    parameters: dict[str, Any]
    adapter: TypeAdapter[dict[str, Any]]
    allowed: frozenset[str]
    allowed_text: str
    #: parameter name -> value passed when the model leaves it out (``X | None`` without default)
    fill: dict[str, Any]
    #: parameters where ``null`` means "use the default" (they have one)
    drop_none: frozenset[str]
    #: parameters that take an object or array but not text: a string value is decoded as JSON
    json_params: frozenset[str]
    context_param: str | None
    #: ``None`` when every argument can be passed by keyword; otherwise the names passed by
    #: position, in order (the ``*args`` name last, spread)
    positional: tuple[str, ...] | None
    var_positional: str | None
    var_keyword: str | None


# --- JSON Schema generation -------------------------------------------------------------------


class _CompactJsonSchema(GenerateJsonSchema):
    """pydantic's generator, with Decimal shown as a string with a format, and the attribute
    docstrings of models, dataclasses and TypedDicts as their fields' descriptions."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        return {"type": "string", "format": "decimal"}

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        cls = schema["cls"]
        fields = getattr(cls, "model_fields", {})
        aliases = {name: info.alias or name for name, info in fields.items()}
        return _describe_fields(super().model_schema(schema), cls, aliases)

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        return _describe_fields(super().dataclass_schema(schema), schema["cls"])

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> JsonSchemaValue:
        return _describe_fields(super().typed_dict_schema(schema), schema.get("cls"))


def _describe_fields(
    result: JsonSchemaValue, cls: Any, aliases: Mapping[str, str] | None = None
) -> JsonSchemaValue:
    """Give properties without a description the docstring written under their field."""
    props = result.get("properties")
    if not isinstance(props, dict) or not isinstance(cls, type):
        return result
    try:
        docs = attribute_docstrings(cls)
    except TypeError:  # a class whose metaclass makes it unhashable
        return result
    for name, text in docs.items():
        prop = props.get(aliases.get(name, name) if aliases else name)
        if isinstance(prop, dict) and "description" not in prop:
            prop["description"] = text
    return result


_NOT_USER_CODE = ("builtins", "typing", "typing_extensions", "pydantic", "collections", __name__)


@functools.lru_cache(maxsize=512)
def attribute_docstrings(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for the string literals written right under annotated fields
    in the body of ``cls`` and of its bases (read from the source; empty when there is none)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        module = getattr(klass, "__module__", "") or ""
        if module.split(".")[0] in _NOT_USER_CODE or module == __name__:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError, ValueError):
            continue  # no source (defined in a REPL or with exec)
        node = tree.body[0] if tree.body else None
        if not isinstance(node, ast.ClassDef):
            continue
        for field, doc in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                text = " ".join(doc.value.value.split())
                if text:
                    docs[field.target.id] = text
    return docs


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_SINGLE = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
)


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _compact(schema: Any, defs: Mapping[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """Inline ``$ref``s, drop ``title`` and ``null`` variants, recursively, schema-aware."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        key = ref.rsplit("/", 1)[-1]
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if key in stack or key not in defs:
            # A recursive type: stop here with a plain object (validation still checks it).
            target: dict[str, Any] = {"type": "object"}
        else:
            target = _compact(defs[key], defs, (*stack, key))
        merged = {**target, **_compact(siblings, defs, stack)}
        return merged
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "$defs", "definitions"):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _compact(v, defs, stack) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            variants = [_compact(v, defs, stack) for v in value if not _is_null(v)]
            if len(variants) == 1 and key in ("anyOf", "oneOf") and isinstance(variants[0], dict):
                # ``X | None`` -> X: merge the single variant into this schema.
                for k, v in variants[0].items():
                    out.setdefault(k, v)
            elif variants:
                out[key] = variants
        elif key in _SCHEMA_SINGLE and isinstance(value, dict):
            out[key] = _compact(value, defs, stack)
        else:
            out[key] = value
    if out.get("default", 0) is None:
        del out["default"]
    return out


def _json_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _types_of(schema: Mapping[str, Any]) -> set[str]:
    """Every JSON type a (compacted) schema admits; an empty set means "anything"."""
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    if "enum" in schema:
        return {_json_type_of(v) for v in schema["enum"]}
    if "const" in schema:
        return {_json_type_of(schema["const"])}
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for variant in schema.get(key, ()):
            sub = _types_of(variant)
            if not sub:
                return set()
            found |= sub
    return found


def _general_type(types: set[str]) -> str:
    """One type to show for a union: the most general that covers it."""
    types = types - {"null"}
    if len(types) == 1:
        return next(iter(types))
    if types and types <= {"integer", "number"}:
        return "number"
    # Anything can be sent as text (objects and arrays as JSON text, which validation decodes).
    return "string"


_FORMAT_PHRASES = {
    "date-time": "an ISO 8601 date-time",
    "date": "a date (YYYY-MM-DD)",
    "time": "a time (HH:MM:SS)",
    "duration": "an ISO 8601 duration",
    "uuid": "a UUID",
    "path": "a file path",
    "decimal": "a decimal number",
    "email": "an email address",
    "uri": "a URL",
    "binary": "text",
}
_TYPE_PHRASES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_PLURALS = {
    "string": "strings",
    "integer": "whole numbers",
    "number": "numbers",
    "boolean": "booleans",
    "object": "objects",
    "array": "lists",
}


def describe_type(schema: Mapping[str, Any]) -> str:
    """A short phrase for what a schema accepts: ``a whole number``, ``one of "c", "f"``."""
    if "enum" in schema:
        values = list(schema["enum"])
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in values[:8])
        return "one of " + shown + (", ..." if len(values) > 8 else "")
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        phrases = list(dict.fromkeys(describe_type(v) for v in variants))
        return " or ".join(phrases)
    t = schema.get("type")
    if not isinstance(t, str):
        return "any JSON value"
    fmt = schema.get("format")
    if t == "string" and isinstance(fmt, str) and fmt in _FORMAT_PHRASES:
        return _FORMAT_PHRASES[fmt]
    if t == "array":
        items = schema.get("items")
        if isinstance(items, dict) and isinstance(items.get("type"), str) and "enum" not in items:
            return "a list of " + _PLURALS.get(items["type"], "values")
        return "a list"
    if t == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and isinstance(extra.get("type"), str):
            return "an object mapping names to " + _PLURALS.get(extra["type"], "values")
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            names = list(props)
            return "an object with " + ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return _TYPE_PHRASES.get(t, t)


def humanize(name: str) -> str:
    """``max_results`` -> ``Max results``; ``getWeather`` -> ``Get weather``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    words = " ".join(words.split()).lower()
    return words[:1].upper() + words[1:] if words else name


def _top_level_property(raw: dict[str, Any], description: str, default: Any) -> dict[str, Any]:
    """Shape one top-level property: a single string ``type``, then ``description``, then the rest."""
    t = raw["type"] if isinstance(raw.get("type"), str) else _general_type(_types_of(raw))
    prop: dict[str, Any] = {"type": t, "description": description}
    for key, value in raw.items():
        if key not in ("type", "description", "default"):
            prop[key] = value
    variants = prop.get("anyOf")
    if (
        isinstance(variants, list)
        and t == "number"
        and all(isinstance(v, dict) and v.keys() == {"type"} for v in variants)
    ):
        del prop["anyOf"]  # ``int | float``: "number" says it all
    if isinstance(raw.get("type"), list):
        # A type list (rare) is kept as anyOf detail so ``type`` stays one string.
        prop.setdefault("anyOf", [{"type": x} for x in raw["type"] if x != "null"])
    if default is not PydanticUndefined and default is not None:
        with contextlib.suppress(pydantic_core.PydanticSerializationError):
            prop["default"] = pydantic_core.to_jsonable_python(default)
    elif "default" in raw:
        prop["default"] = raw["default"]
    return prop


# --- schemas written by others (MCP servers, hand-written JSON Schema) --------------------------


def _schema_problem(schema: Any, defs: Mapping[str, Any], path: str) -> str | None:
    """The first construct in ``schema`` that compaction cannot carry over, or ``None``."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            found = _schema_problem(item, defs, f"{path}/{i}")
            if found:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith(("#/$defs/", "#/definitions/")):
            return f"a $ref to {ref!r} at {path or '/'} (only local #/$defs/... references can be inlined)"
        if ref.rsplit("/", 1)[-1] not in defs:
            return f"a $ref to {ref!r} at {path or '/'} that points to nothing"
    for key, value in schema.items():
        if key in ("$defs", "definitions", "enum", "const", "default", "examples"):
            continue
        found = _schema_problem(value, defs, f"{path}/{key}")
        if found:
            return found
    return None


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"allOf": [A, B], ...}`` -> one schema with A's and B's keys (properties merged)."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def compact_json_schema(schema: Mapping[str, Any], *, tool_name: str) -> dict[str, Any]:
    """The ``parameters`` of a tool, from a JSON Schema written elsewhere (an MCP server's).

    The same compaction as for agentkit's own tools: local ``$ref``s inlined (a recursive one
    becomes a plain object), ``title`` and ``null`` variants dropped, ``allOf`` merged, and
    every top-level property given one string ``type`` and a ``description`` (its own, else
    its title, else one made from its name and type). A missing ``type`` or ``properties`` at
    the top is read as an object without parameters.

    Raises :class:`ToolDefinitionError` naming the construct and where it is when the schema
    cannot become flat, named parameters: arguments that are not an object, a union of
    objects at the top, a ``$ref`` that is not local or points nowhere.
    """
    if not isinstance(schema, Mapping):
        raise ToolDefinitionError(
            f"tool '{tool_name}': its input schema is a {type(schema).__name__}, not a JSON object"
        )
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    problem = _schema_problem(dict(schema), defs, "")
    if problem:
        raise ToolDefinitionError(f"tool '{tool_name}': its input schema uses {problem}")
    root = _compact(dict(schema), defs)
    root = _merge_all_of(root)
    for union in ("anyOf", "oneOf"):
        if isinstance(root.get(union), list):
            raise ToolDefinitionError(
                f"tool '{tool_name}': its input schema uses a top-level {union} (the arguments "
                "are one of several shapes), which cannot be shown as one list of named parameters"
            )
    kind = root.get("type", "object")
    if isinstance(kind, list) and "object" in kind:
        kind = "object"  # ["object", "null"]: the arguments may not be null anyway
    if kind != "object":
        raise ToolDefinitionError(
            f"tool '{tool_name}': its input schema has type {kind!r} at the top; tool arguments "
            "must be an object with named properties"
        )
    raw_props = root.get("properties") or {}
    if not isinstance(raw_props, dict):
        raise ToolDefinitionError(
            f"tool '{tool_name}': its input schema has 'properties' of type "
            f"{type(raw_props).__name__}; expected an object mapping names to schemas"
        )
    titles = {}
    source_props = schema.get("properties")
    if isinstance(source_props, Mapping):
        for name, prop in source_props.items():
            if isinstance(prop, Mapping) and isinstance(prop.get("title"), str):
                titles[name] = prop["title"]
    properties: dict[str, Any] = {}
    for name, raw in raw_props.items():
        prop = _merge_all_of(raw) if isinstance(raw, dict) else {}
        description = prop.get("description")
        if not isinstance(description, str) or not description.strip():
            title = titles.get(name)
            if title and title.strip().lower() != humanize(name).lower():
                description = f"{title.strip()}: {describe_type(prop)}."
            else:
                description = f"{humanize(name)}: {describe_type(prop)}."
        properties[name] = _top_level_property(
            prop, " ".join(description.split()), PydanticUndefined
        )
    required = root.get("required")
    return {
        "type": "object",
        "properties": properties,
        "required": [n for n in required if n in properties] if isinstance(required, list) else [],
    }


# --- the signature ----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Param:
    name: str
    kind: inspect._ParameterKind
    annotation: Any  # the type for the TypedDict field (Annotated metadata kept)
    base: Any  # the bare type, for error messages
    description: str | None
    default: Any  # the Python default, or a Field default, or PydanticUndefined
    python_default: bool  # the function itself supplies the default
    optional: bool  # None is an accepted value


def _is_context_type(hint: Any, context_type: type) -> bool:
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, UnionType):
        return any(_is_context_type(a, context_type) for a in get_args(hint))
    return hint is context_type or get_origin(hint) is context_type


def _accepts_none(hint: Any) -> bool:
    if hint is None or hint is NoneType:
        return True
    origin = get_origin(hint)
    if origin is Annotated:
        return _accepts_none(get_args(hint)[0])
    if origin is Union or origin is UnionType:
        return any(_accepts_none(a) for a in get_args(hint))
    if origin is Literal:
        return None in get_args(hint)
    return False


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target: Any = fn
    while hasattr(target, "func") and callable(target.func):  # functools.partial
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target):
        target = getattr(target, "__call__", target)  # noqa: B004  (callable objects)
    return typing.get_type_hints(target, include_extras=True)


def _docstring_of(fn: Any) -> str | None:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn) or isinstance(fn, type):
        return inspect.getdoc(fn)
    own = fn.__dict__.get("__doc__") if hasattr(fn, "__dict__") else None
    if isinstance(own, str):
        return inspect.cleandoc(own)
    call = getattr(type(fn), "__call__", None)  # noqa: B004  (callable objects)
    return inspect.getdoc(call) if call is not None else None


_GOOGLE_TITLE = re.compile(
    r"^(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters"
    r"|Attributes|Returns|Return|Yields|Raises|Exceptions|Examples?|Notes?):[ \t]*$",
    re.MULTILINE,
)


def _raw_docstring(fn: Any) -> str | None:
    while isinstance(fn, functools.partial):
        fn = fn.func
    doc = getattr(fn, "__doc__", None)
    return doc if isinstance(doc, str) else None


def _parse_docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = _docstring_of(fn)
    if not doc:
        return "", {}
    import docstring_parser  # imported here: it is only needed when tools are defined

    candidates = [doc]
    raw = _raw_docstring(fn)
    if _GOOGLE_TITLE.match(doc.split("\n", 1)[0]) and raw is not None:
        # ``"""Args:`` on the opening line: cleaning the docstring (as the parsers do again)
        # can dedent the entries under it to the title's level, where they are no longer
        # entries. Behind a blank first line, the entries keep their own indentation.
        candidates.append("\n" + inspect.cleandoc("\n" + raw))
    parsed = None
    if _GOOGLE_TITLE.search(doc):
        # Auto-detection would hide a Google parse error and fall back to another style.
        for text in candidates:
            try:
                attempt = docstring_parser.parse(text, docstring_parser.Style.GOOGLE)
            except docstring_parser.ParseError:
                continue
            if parsed is None or len(attempt.params) > len(parsed.params):
                parsed, doc = attempt, text
    try:
        if parsed is None or not parsed.params:
            parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        return doc.strip(), {}
    parts = [p.strip() for p in (parsed.short_description, parsed.long_description) if p]
    params: dict[str, str] = {}
    for p in parsed.params:
        text = " ".join((p.description or "").split())
        if text:
            params[p.arg_name.lstrip("*").strip()] = text
    return "\n\n".join(parts), params


def _definition_error(fn_name: str, param: str, problem: str, fix: str) -> ToolDefinitionError:
    return ToolDefinitionError(f"tool '{fn_name}', parameter '{param}': {problem}; {fix}")


def _split_annotated(hint: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while get_origin(hint) is Annotated:
        args = get_args(hint)
        hint, metadata = args[0], [*args[1:], *metadata]
    return hint, metadata


def _collect_params(
    fn: Callable[..., Any],
    tool_name: str,
    context_type: type,
    doc_params: Mapping[str, str],
    skip_first: bool,
) -> tuple[list[_Param], str | None, list[inspect.Parameter]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"tool '{tool_name}': cannot read the signature of {fn!r} ({exc}); "
            "wrap it in a plain Python function with annotated parameters"
        ) from exc
    try:
        hints = _type_hints(fn)
    except Exception as exc:  # NameError for forward references, mostly
        raise ToolDefinitionError(
            f"tool '{tool_name}': cannot resolve the type annotations ({type(exc).__name__}: "
            f"{exc}); define or import every annotated type at module level"
        ) from exc

    params: list[_Param] = []
    context_param: str | None = None
    signature_params = list(sig.parameters.values())[1 if skip_first else 0 :]
    for p in signature_params:
        if p.annotation is inspect.Parameter.empty:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                fix = f"annotate the item type, e.g. `*{p.name}: str`, or remove it"
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                fix = f"annotate the value type, e.g. `**{p.name}: str`, or remove it"
            elif p.name in ("self", "cls") and p is signature_params[0]:
                fix = (
                    "for a method, put @tool on the method in the class body (above "
                    "@classmethod or @staticmethod if there is one) and pass the tool read "
                    "from an instance (`instance.method`); self and cls are left out"
                )
            elif p.default is not inspect.Parameter.empty and p.default is not None:
                fix = f"add one, e.g. `{p.name}: {type(p.default).__name__} = {p.default!r}`"
            else:
                fix = f"add one, e.g. `{p.name}: str`"
            raise _definition_error(tool_name, p.name, "has no type annotation", fix)
        hint = hints.get(p.name, p.annotation)
        if isinstance(hint, str):
            raise _definition_error(
                tool_name,
                p.name,
                f"the annotation {hint!r} could not be resolved",
                "define or import the type at module level",
            )
        if _is_context_type(hint, context_type):
            if context_param is not None:
                raise _definition_error(
                    tool_name,
                    p.name,
                    f"a second ToolContext parameter (the first is '{context_param}')",
                    "keep only one",
                )
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise _definition_error(
                    tool_name, p.name, "ToolContext on *args/**kwargs", "use a plain parameter"
                )
            context_param = p.name
            continue
        if p.name.startswith("_") and p.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            if p.default is inspect.Parameter.empty:
                raise _definition_error(
                    tool_name,
                    p.name,
                    "names starting with '_' are hidden from the model, so it needs a default",
                    "give it a default or rename it",
                )
            continue  # private parameter: not shown to the model, the default applies

        base, metadata = _split_annotated(hint)
        description: str | None = None
        field_default: Any = PydanticUndefined
        kept: list[Any] = []
        for item in metadata:
            if isinstance(item, str):
                description = description or " ".join(item.split())
                continue
            if isinstance(item, FieldInfo):
                if item.description:
                    description = " ".join(item.description.split())
                if item.default is not PydanticUndefined:
                    field_default = item.default
                elif item.default_factory is not None:
                    raise _definition_error(
                        tool_name,
                        p.name,
                        "Field(default_factory=...) is not supported for tool parameters",
                        "use a plain default value or `X | None = None`",
                    )
            kept.append(item)

        python_default = False
        default: Any = PydanticUndefined
        if isinstance(p.default, FieldInfo):
            # ``x: int = Field(3, ge=0)``: the function would get the FieldInfo if we left it out.
            if p.default.description:
                description = description or " ".join(p.default.description.split())
            if p.default.default is not PydanticUndefined:
                field_default = p.default.default
            kept.append(p.default)
        elif p.default is not inspect.Parameter.empty:
            python_default = True
            default = p.default
        if default is PydanticUndefined:
            default = field_default

        if description is None:
            description = doc_params.get(p.name)

        annotation: Any = base
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            annotation = list[base]  # type: ignore[valid-type]
            python_default = True
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            annotation = dict[str, base]  # type: ignore[valid-type]
            python_default = True
        if kept:
            annotation = Annotated[(annotation, *kept)]
        params.append(
            _Param(
                name=p.name,
                kind=p.kind,
                annotation=annotation,
                base=base,
                description=description,
                default=default,
                python_default=python_default,
                optional=_accepts_none(base),
            )
        )
    return params, context_param, signature_params


def _refuse_generators(fn: Any, tool_name: str) -> None:
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not inspect.isroutine(target):
        target = getattr(type(target), "__call__", target)  # noqa: B004  (callable objects)
    kind = (
        "an async generator"
        if inspect.isasyncgenfunction(target)
        else "a generator"
        if inspect.isgeneratorfunction(target)
        else None
    )
    if kind is not None:
        raise ToolDefinitionError(
            f"tool '{tool_name}' is {kind} function (it uses `yield`); a tool returns one "
            "value, which the model reads as a whole: collect the items and return them, e.g. "
            "`return [...]` or `return list(items)`"
        )


def _find_unsupported(params: Iterable[_Param], tool_name: str, exc: Exception) -> NoReturn:
    for p in params:
        try:
            TypeAdapter(p.annotation).json_schema(schema_generator=_CompactJsonSchema)
        except Exception as inner:  # which parameter pydantic cannot handle
            raise _definition_error(
                tool_name,
                p.name,
                f"the type {_type_name(p.base)} cannot be expressed in JSON Schema "
                f"({type(inner).__name__}: {str(inner).splitlines()[0]})",
                "use JSON-friendly types (str, int, float, bool, list, dict, Literal, Enum, "
                "pydantic models, dataclasses, TypedDict) or hide it with a leading '_' and "
                "a default",
            ) from inner
    raise ToolDefinitionError(
        f"tool '{tool_name}': cannot build a schema for the parameters ({exc})"
    ) from exc


def _type_name(t: Any) -> str:
    if isinstance(t, type):
        return t.__qualname__
    return repr(t).replace("typing.", "")


def build_function_schema(
    fn: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    context_type: type,
    skip_first: bool = False,
) -> FunctionSchema:
    """Build the schema and validator for ``fn``, or raise :class:`ToolDefinitionError`.

    ``skip_first`` leaves the first parameter out (``self`` or ``cls`` of a method).
    """
    if not callable(fn):
        raise ToolDefinitionError(f"@tool needs a function, got {type(fn).__name__}")
    tool_name = name if name is not None else getattr(fn, "__name__", None)
    if not isinstance(tool_name, str) or not _NAME_RE.match(tool_name):
        raise ToolDefinitionError(
            f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-', starting "
            "with a letter or '_' (pass name='...' to @tool for lambdas and callable objects)"
        )
    _refuse_generators(fn, tool_name)
    doc_text, doc_params = _parse_docstring(fn)
    params, context_param, all_params = _collect_params(
        fn, tool_name, context_type, doc_params, skip_first
    )

    fields: dict[str, Any] = {}
    fill: dict[str, Any] = {}
    drop_none: set[str] = set()
    for p in params:
        has_default = p.python_default or p.default is not PydanticUndefined
        if not has_default and p.optional:
            fill[p.name] = None  # ``X | None`` without a default: optional, passed as None
        if has_default and not p.optional:
            drop_none.add(p.name)
        required = not has_default and not p.optional
        fields[p.name] = Required[p.annotation] if required else NotRequired[p.annotation]

    # A TypedDict validates straight into the keyword arguments: no model instance to unpack.
    args_type: Any = TypedDict(f"{tool_name}_arguments", fields)  # type: ignore[misc]
    try:
        adapter = cast("TypeAdapter[dict[str, Any]]", TypeAdapter(args_type))
        raw = adapter.json_schema(schema_generator=_CompactJsonSchema)
    except (
        PydanticSchemaGenerationError,
        PydanticInvalidForJsonSchema,
        PydanticUserError,
        TypeError,
        ValueError,
    ) as exc:
        _find_unsupported(params, tool_name, exc)

    defs = raw.get("$defs", {})
    raw_props: dict[str, Any] = raw.get("properties", {})
    properties: dict[str, Any] = {}
    json_params: set[str] = set()
    for p in params:
        compacted = _compact(raw_props.get(p.name, {}), defs)
        shown_default = p.default if p.default is not PydanticUndefined else PydanticUndefined
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            shown_default = PydanticUndefined
        desc = p.description
        if not desc:
            desc = f"{humanize(p.name)}: {describe_type(compacted)}."
        prop = _top_level_property(compacted, desc, shown_default)
        types = _types_of(compacted)
        if types and (types & {"object", "array"}) and "string" not in types:
            json_params.add(p.name)
        properties[p.name] = prop
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [n for n in raw.get("required", []) if n in properties],
    }

    positional: tuple[str, ...] | None = None
    var_positional = next((p.name for p in params if p.kind is p.kind.VAR_POSITIONAL), None)
    var_keyword = next((p.name for p in params if p.kind is p.kind.VAR_KEYWORD), None)
    if var_positional is not None or any(
        p.kind is inspect.Parameter.POSITIONAL_ONLY for p in all_params
    ):
        positional = tuple(
            p.name
            for p in all_params
            if p.kind
            in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            )
            and not p.name.startswith("_")
        )

    if description is None:
        description = doc_text or humanize(tool_name) + "."
    allowed = frozenset(properties)
    return FunctionSchema(
        name=tool_name,
        description=description,
        parameters=parameters,
        adapter=adapter,
        allowed=allowed,
        allowed_text=", ".join(properties) or "(none: call it with {})",
        fill=fill,
        drop_none=frozenset(drop_none),
        json_params=frozenset(json_params),
        context_param=context_param,
        positional=positional,
        var_positional=var_positional,
        var_keyword=var_keyword,
    )


# --- validation errors, written for the model ---------------------------------------------------


def _got(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _MAX_GOT_CHARS:
        text = text[: _MAX_GOT_CHARS - 3] + "..."
    return text


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _expected_from_msg(msg: str) -> str:
    if msg.startswith("Input should be "):
        msg = msg[len("Input should be ") :]
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    else:
        msg = msg[:1].lower() + msg[1:]
    return msg.split(", unable to ", 1)[0]


def make_error(field: str, expected: str, got: str, message: str) -> dict[str, Any]:
    return {"field": field, "expected": expected, "got": got, "message": message}


def arguments_error(tool_name: str, errors: list[dict[str, Any]]) -> ToolArgumentsError:
    """A :class:`ToolArgumentsError` whose text lists each problem in a line the model can act on."""
    lines = [f"Invalid arguments for tool '{tool_name}':"]
    lines += [f"- {e['message']}" for e in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        lines.append(f"- ... and {len(errors) - _MAX_LISTED_ERRORS} more")
    lines.append(f"Call {tool_name} again with corrected arguments.")
    return ToolArgumentsError("\n".join(lines), tool_name=tool_name, errors=errors)


_TYPE_ERROR_SUFFIXES = ("_type", "_parsing", "_error")


def format_validation_error(schema: FunctionSchema, exc: ValidationError) -> ToolArgumentsError:
    """Turn pydantic's errors into one short message per bad field."""
    errors: list[dict[str, Any]] = []
    done: set[str] = set()
    props = schema.parameters["properties"]
    for err in exc.errors(include_url=False, include_context=False):
        loc = tuple(err.get("loc", ()))
        top = str(loc[0]) if loc else ""
        prop = props.get(top)
        kind = str(err.get("type", ""))
        if prop is not None and kind == "missing" and len(loc) == 1:
            expected = describe_type(prop)
            errors.append(
                make_error(
                    top, expected, "nothing", f"{top}: missing (required); expected {expected}"
                )
            )
            continue
        union_top = prop is not None and ("anyOf" in prop or "oneOf" in prop)
        if prop is not None and (len(loc) == 1 or union_top):
            if top in done:
                continue  # one line per union field, not one per variant
            done.add(top)
            value = err.get("input")
            if kind.endswith(_TYPE_ERROR_SUFFIXES) or kind in ("enum", "union_tag_invalid"):
                expected = describe_type(prop)
            else:
                expected = _expected_from_msg(str(err.get("msg", "")))
            field = top
        else:
            field = _field_path(loc) or "arguments"
            value = err.get("input")
            expected = _expected_from_msg(str(err.get("msg", "")))
        got = "null" if value is None else _got(value)
        if kind == "missing":
            got = "nothing"
        errors.append(make_error(field, expected, got, f"{field}: expected {expected}, got {got}"))
    return arguments_error(schema.name, errors)
