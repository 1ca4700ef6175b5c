"""One MCP server tool as an ordinary :class:`agentkit.Tool`.

The agent sees nothing special: the tool has a name, a description and compact ``parameters``,
validates what the model sends (leniently, like agentkit's own tools, then against the
server's full schema) and runs through the same loop machinery (retries, approval, output
caps, parallel or sequential calls). Running it is a ``tools/call`` on the server.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import mcp.types as mcp_types

from .._json import loads
from .._schema import _types_of, arguments_error, make_error
from ..errors import ToolError
from ..messages import ToolResult
from ..tools import Tool, ToolContext
from ._convert import result_text

if TYPE_CHECKING:
    from ._client import MCPTools

__all__ = ["MCPTool"]

logger = logging.getLogger("agentkit.mcp")

_INT = re.compile(r"^\s*-?\d+\s*$")
_NUMBER = re.compile(r"^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_MAX_PROBLEMS = 8


async def _never_called() -> None:  # pragma: no cover - MCPTool runs on the server instead
    raise NotImplementedError


@functools.lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> Any:
    """A JSON Schema validator for a server's input schema, or ``None`` if it is not valid."""
    jsonschema: Any = importlib.import_module("jsonschema")  # a dependency of the MCP SDK

    schema = loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        logger.debug("input schema not usable for validation (%s); the server checks", exc.message)
        return None
    return cls(schema)


class MCPTool(Tool):
    """A tool of an MCP server. ``server_name`` is the server's own name for it.

    Built by :class:`~agentkit.mcp.MCPTools`; ``input_schema`` is the schema as the server
    sent it, ``parameters`` what the model sees.
    """

    server_name: str
    input_schema: dict[str, Any]

    def __init__(
        self,
        source: MCPTools,
        spec: mcp_types.Tool,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        timeout: float | None,
        template: Tool,
    ) -> None:
        # Everything a Tool holds comes from ``template`` (built once per server with its
        # options: retries, approval, sequential); building a Tool per MCP tool would cost a
        # schema and a validator each for a function that is never called.
        vars(self).update(vars(template))
        self.name = name
        self.description = description
        self.parameters = parameters
        self._flat = {"name": name, "description": description, "parameters": parameters}
        self.timeout = timeout
        self.server_name = spec.name
        self.input_schema = dict(spec.input_schema)
        self._source = source
        self._required = frozenset(parameters.get("required", ()))
        extra = spec.input_schema.get("additionalProperties", True)
        self._open = extra is not False and not parameters["properties"]
        self._schema_json = json.dumps(self.input_schema, sort_keys=True)

    @staticmethod
    def template(**options: Any) -> Tool:
        """The shared part of a server's tools, with the options every one of them gets."""
        return Tool(_never_called, name="mcp_tool", **options)

    def __repr__(self) -> str:
        return f"MCPTool(name={self.name!r}, server={self._source.server!r})"

    def same_as(self, spec: mcp_types.Tool, description: str) -> bool:
        """Whether ``spec`` (from a new listing) describes this very tool."""
        return (
            spec.name == self.server_name
            and description == self.description
            and dict(spec.input_schema) == self.input_schema
        )

    # --- validation ---------------------------------------------------------------------------

    def validate(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """Check the model's arguments: small fixes first (``"3"`` for 3, JSON text for an
        object, ``null`` for an optional argument), then the server's own schema."""
        data = self._as_mapping(arguments)
        props: dict[str, Any] = self.parameters["properties"]
        allowed = ", ".join(props) or "(none: call it with {})"
        problems: list[dict[str, Any]] = []
        out: dict[str, Any] = {}
        for key, value in data.items():
            prop = props.get(key)
            if prop is None:
                if not self._open:
                    problems.append(
                        make_error(
                            str(key),
                            f"one of: {allowed}",
                            "an unknown argument",
                            f"{key}: unknown argument; allowed arguments: {allowed}",
                        )
                    )
                    continue
            elif value is None and key not in self._required:
                continue  # "not given": the server's default applies
            elif isinstance(value, str):
                value = _coerce(value, _types_of(prop))
            out[key] = value
        for key in self._required:
            if key not in data:
                problems.append(make_error(key, "a value", "nothing", f"{key}: missing (required)"))
        if not problems:
            validator = _validator_for(self._schema_json)
            if validator is not None:
                best_match = importlib.import_module("jsonschema.exceptions").best_match
                for error in validator.iter_errors(out):
                    error = best_match([error])  # inside anyOf/oneOf: the variant that came closest
                    path = "".join(
                        f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                        for i, p in enumerate(error.absolute_path)
                    )
                    field = path or "arguments"
                    problems.append(
                        make_error(
                            field, error.message[:200], "", f"{field}: {error.message[:200]}"
                        )
                    )
                    if len(problems) > _MAX_PROBLEMS:
                        break
        if problems:
            raise arguments_error(self.name, problems)
        return out

    # --- running ------------------------------------------------------------------------------

    async def run(
        self,
        arguments: Mapping[str, Any] | str | None,
        context: ToolContext[Any] | None = None,
    ) -> ToolResult:
        """Validate ``arguments``, call the tool on the server, return its text for the model."""
        text = await self.run_validated(self.validate(arguments), context)
        return ToolResult(
            content=text,
            value=text,
            is_error=False,
            tool_call_id=context.tool_call_id if context is not None else None,
            name=self.name,
        )

    async def run_validated(
        self, arguments: dict[str, Any], context: ToolContext[Any] | None = None
    ) -> str:
        """Call the tool on the server; returns the text the model will read.

        A result the server marks ``isError`` raises :class:`~agentkit.errors.ToolError` with
        its text (the model reads it); see :meth:`MCPTools.call` for the other failures.
        """
        result = await self._source.call(self.server_name, arguments, self.timeout, self.name)
        text = result_text(result)
        if result.is_error:
            raise ToolError(f"The tool {self.name} reported an error: {text}", tool_name=self.name)
        return text


def _coerce(value: str, types: set[str]) -> Any:
    """A string argument turned into the type the schema wants, when it plainly is one."""
    if not types or "string" in types:
        return value
    if "integer" in types and _INT.match(value):
        return int(value)
    if "number" in types and _NUMBER.match(value):
        return float(value)
    if "boolean" in types and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if types & {"object", "array"}:
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                return loads(stripped)
            except ValueError:
                return value
    return value
