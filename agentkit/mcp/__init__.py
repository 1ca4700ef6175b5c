"""MCP servers as agentkit tools, and agentkit tools served over MCP (extra ``agentkit[mcp]``).

- :class:`MCPTools`: connect to a server (``stdio``, ``http``, ``from_server``) and give its
  tools to an agent, with schemas a small model and Workers AI accept;
- :func:`build_server` / :func:`serve_stdio`: an agent's tools (or the agent as one tool), or a
  list of tools, as an MCP server.

The MCP SDK is imported when one of these names is first used, with a clear error when it is
not installed. See ``docs/mcp.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, MCPTools
    from ._errors import (
        MCPConnectionError,
        MCPConnectionLost,
        MCPError,
        MCPProtocolError,
        MCPSchemaError,
    )
    from ._server import build_server, serve_stdio, tools_to_serve
    from ._tool import MCPTool

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "MCPConnectionError",
    "MCPConnectionLost",
    "MCPError",
    "MCPProtocolError",
    "MCPSchemaError",
    "MCPTool",
    "MCPTools",
    "build_server",
    "serve_stdio",
    "tools_to_serve",
]

_WHERE = {
    "DEFAULT_CALL_TIMEOUT": "_client",
    "DEFAULT_CONNECT_TIMEOUT": "_client",
    "MCPTools": "_client",
    "MCPTool": "_tool",
    "build_server": "_server",
    "serve_stdio": "_server",
    "tools_to_serve": "_server",
    "MCPConnectionError": "_errors",
    "MCPConnectionLost": "_errors",
    "MCPError": "_errors",
    "MCPProtocolError": "_errors",
    "MCPSchemaError": "_errors",
}


def __getattr__(name: str) -> Any:
    module_name = _WHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module_name != "_errors":
        try:
            importlib.import_module("mcp")
        except ImportError as exc:
            raise ImportError(
                f'agentkit.mcp.{name} needs the MCP SDK: pip install "agentkit[mcp]"'
            ) from exc
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
