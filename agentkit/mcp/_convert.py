"""MCP tool definitions and results, turned into what agentkit and a text-only model use.

- :func:`parameters_for`: an MCP input schema -> agentkit's compact ``parameters`` (through
  :func:`agentkit._schema.compact_json_schema`), checked against the ``tools`` part of the
  Workers AI input schema that agentkit ships; a schema that cannot be expressed is refused.
- :func:`result_text`: a ``CallToolResult`` -> the text of the tool message.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import mcp.types as mcp_types

from .._json import loads
from .._schema import compact_json_schema
from ..errors import ToolDefinitionError
from ..tools import NO_OUTPUT
from ._errors import MCPSchemaError

__all__ = ["parameters_for", "result_text", "seed_problems", "tool_name"]

_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server_name: str, prefix: str | None) -> str:
    """The name the model sees: ``prefix_name``, with characters other than letters, digits,
    ``_`` and ``-`` replaced by ``_`` (``files.read`` -> ``files_read``), at most 64 long."""
    name = _NAME_BAD_CHARS.sub("_", server_name)
    if prefix:
        name = f"{prefix}_{name}"
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name
    return name[:64]


@functools.cache
def _seed_validator() -> Any:
    """A validator for a ``{"type": "function", "function": {...}}`` entry of ``tools``, from
    the Workers AI input schema agentkit ships (the branch of its ``oneOf`` for that shape)."""
    jsonschema: Any = importlib.import_module("jsonschema")  # a dependency of the MCP SDK
    text = (
        resources.files("agentkit")
        .joinpath("_data/llama-3.2-3b-instruct.input.schema.json")
        .read_text("utf-8")
    )
    schema = json.loads(text)
    for branch in schema.get("oneOf", ()):
        tools = branch.get("properties", {}).get("tools")
        if tools is None:
            continue
        for shape in tools["items"].get("oneOf", [tools["items"]]):
            if "function" in shape.get("properties", {}):
                return jsonschema.validators.validator_for(shape)(shape)
    raise RuntimeError("the shipped Workers AI input schema has no 'tools' entry for functions")


def seed_problems(definition: Mapping[str, Any]) -> list[str]:
    """Why a ``{"type": "function", "function": ...}`` tool definition breaks the Workers AI
    input schema ([] when it is fine)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '/'}: {e.message[:200]}"
        for e in _seed_validator().iter_errors(dict(definition))
    ]


def parameters_for(
    tool: mcp_types.Tool, *, name: str, description: str, server: str
) -> dict[str, Any]:
    """The compact ``parameters`` for an MCP tool, or :class:`MCPSchemaError` saying why not."""
    hint = (
        f"leave it out with exclude=[{tool.name!r}] (on the command line: "
        f"--mcp-exclude {tool.name!r})"
    )
    try:
        parameters = compact_json_schema(tool.input_schema, tool_name=tool.name)
    except ToolDefinitionError as exc:
        raise MCPSchemaError(
            f"MCP server {server}: {exc}; this tool cannot be offered to the model, {hint}",
            server=server,
            tool_name=tool.name,
        ) from None
    definition = {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }
    problems = seed_problems(definition)
    if problems:
        raise MCPSchemaError(
            f"MCP server {server}: tool '{tool.name}': its converted schema breaks the Workers AI "
            f"tools schema ({'; '.join(problems[:3])}); {hint}",
            server=server,
            tool_name=tool.name,
        )
    return parameters


# --- results ----------------------------------------------------------------------------------


def _size(data: str) -> str:
    """The decoded size of base64 ``data``, for placeholders."""
    n = len(data) * 3 // 4
    return f"{n} bytes" if n < 2048 else f"{n // 1024} KB"


def _block_text(block: Any) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent):
        return f"[image: {block.mime_type}, {_size(block.data)}; not shown, this model reads text only]"
    if isinstance(block, mcp_types.AudioContent):
        return f"[audio: {block.mime_type}, {_size(block.data)}; not shown, this model reads text only]"
    if isinstance(block, mcp_types.ResourceLink):
        mime = f", {block.mime_type}" if block.mime_type else ""
        about = f": {block.description}" if block.description else ""
        return f"[resource link: {block.name} <{block.uri}>{mime}{about}]"
    if isinstance(block, mcp_types.EmbeddedResource):
        res = block.resource
        mime = f", {res.mime_type}" if res.mime_type else ""
        if isinstance(res, mcp_types.TextResourceContents):
            return f"[resource <{res.uri}>{mime}]\n{res.text}"
        return f"[resource <{res.uri}>{mime}, {_size(res.blob)}; binary, not shown]"
    kind = getattr(block, "type", type(block).__name__)
    return f"[{kind} content; not shown]"


def _holds(text: str, structured: Any) -> bool:
    """Whether a text block already says what the structured content says: the same JSON, or
    the ``{"result": value}`` wrapping SDK servers add around a value that is not an object."""
    if isinstance(structured, dict) and structured.keys() == {"result"}:
        if structured["result"] == text:
            return True
        structured = structured["result"]
    if text.lstrip()[:1] not in ("{", "[", '"') and not isinstance(structured, int | float):
        return False
    try:
        return bool(loads(text) == structured)
    except ValueError:
        return False


def result_text(result: mcp_types.CallToolResult) -> str:
    """The tool message for a result: text as is, other content as short placeholders, and
    structured content as compact JSON (in place of a text block that holds the same JSON;
    left out when a text block already says it)."""
    parts = [_block_text(block) for block in result.content]
    structured = result.structured_content
    if structured is not None:
        compact = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        for i, block in enumerate(result.content):
            if isinstance(block, mcp_types.TextContent) and _holds(block.text, structured):
                if block.text.lstrip()[:1] in ("{", "["):
                    parts[i] = compact
                break
        else:
            parts.append(compact)
    text = "\n".join(p for p in parts if p)
    return text or NO_OUTPUT
