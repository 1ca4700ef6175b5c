"""agentkit tools served over MCP: an agent's tools, the agent itself as one tool, or a list.

The schemas served are agentkit's own (``Tool.parameters``); a call runs ``Tool.run`` (the same
validation the agent applies), and a failure comes back as an ``isError`` result with the text
a model would have read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import mcp.types as mcp_types
from mcp.server import Server
from mcp.server.stdio import stdio_server

from ..agent import Agent
from ..errors import ConfigurationError, ToolError
from ..tools import Tool, ToolContext

__all__ = ["build_server", "serve_stdio", "tools_to_serve"]

logger = logging.getLogger("agentkit.mcp")


def tools_to_serve(target: Any, *, as_tool: bool = False) -> list[Tool]:
    """The tools an MCP server built from ``target`` offers.

    ``target`` is an :class:`~agentkit.Agent` (its tools, or with ``as_tool=True`` one tool
    that runs the agent) or a list of tools and plain functions.
    """
    if isinstance(target, Agent):
        return [target.as_tool()] if as_tool else list(target.tools)
    if as_tool:
        raise ConfigurationError("as_tool needs an Agent, got a list of tools")
    if isinstance(target, Tool) or callable(target):
        target = [target]
    if not isinstance(target, Sequence) or isinstance(target, str | bytes):
        raise ConfigurationError(f"serve an Agent or a list of tools, got {type(target).__name__}")
    tools = [t if isinstance(t, Tool) else Tool.from_function(t) for t in target]
    names = [t.name for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(f"two tools are named {twice[0]!r}; rename one")
    if not tools:
        raise ConfigurationError("nothing to serve: the list of tools is empty")
    return tools


def build_server(
    target: Any, *, as_tool: bool = False, name: str = "agentkit", deps: Any = None
) -> Server[Any]:
    """An MCP SDK server (low-level ``mcp.server.Server``) offering ``target``'s tools.

    ``deps`` reaches tools that take a :class:`~agentkit.ToolContext`.

    Run it with :func:`serve_stdio`, or connect to it in process with
    ``MCPTools.from_server(server)``.
    """
    tools = tools_to_serve(target, as_tool=as_tool)
    by_name = {t.name: t for t in tools}
    listing = [
        mcp_types.Tool(name=t.name, description=t.description, input_schema=t.parameters)
        for t in tools
    ]

    async def list_tools(ctx: Any, params: Any) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=listing)

    async def call_tool(
        ctx: Any, params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        tool = by_name.get(params.name)
        if tool is None:
            return _error(
                f"There is no tool named {params.name!r}. Available: {', '.join(by_name)}."
            )
        context: ToolContext[Any] = ToolContext(deps=deps, tool_name=tool.name)
        try:
            result = await tool.run(params.arguments or {}, context)
        except ToolError as exc:
            return _error(str(exc))
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=result.content)])

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def _error(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=text)], is_error=True)


async def serve_stdio(
    target: Any, *, as_tool: bool = False, name: str = "agentkit", deps: Any = None
) -> None:
    """Serve ``target``'s tools over stdin/stdout until the client closes the connection."""
    server = build_server(target, as_tool=as_tool, name=name, deps=deps)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
