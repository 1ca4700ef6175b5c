"""The command line's MCP parts: ``--mcp`` / ``--mcp-http`` for ``agentkit run``, and
``agentkit mcp serve FILE.py:NAME``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import shlex
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._selection import ToolSelector
from ..agent import Agent
from ..errors import ConfigurationError
from ..tools import Tool

if TYPE_CHECKING:
    from ._client import MCPTools

__all__ = ["add_mcp_options", "add_serve_command", "agent_with_servers"]


def add_mcp_options(parser: argparse.ArgumentParser) -> None:
    """``--mcp``, ``--mcp-http``, ``--mcp-env`` and ``--mcp-exclude`` (each repeatable)."""
    group = parser.add_argument_group("MCP servers (need agentkit[mcp])")
    group.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="COMMAND",
        help='add the tools of an MCP server started with COMMAND, e.g. --mcp "python server.py"',
    )
    group.add_argument(
        "--mcp-http",
        action="append",
        default=[],
        metavar="URL",
        help="add the tools of an MCP server reached over streamable HTTP at URL",
    )
    group.add_argument(
        "--mcp-env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this environment variable to the --mcp servers (they get only a minimal "
        "environment otherwise)",
    )
    group.add_argument(
        "--mcp-exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out MCP tools with this name (or glob pattern), for every server",
    )


def _servers(args: argparse.Namespace) -> list[MCPTools]:
    try:
        from ._client import MCPTools
    except ImportError as exc:
        raise ConfigurationError(
            '--mcp and --mcp-http need the MCP SDK: pip install "agentkit[mcp]"'
        ) from exc
    exclude = list(args.mcp_exclude)
    env: dict[str, str] = {}
    for name in args.mcp_env:
        if name not in os.environ:
            raise ConfigurationError(f"--mcp-env {name}: the variable is not set")
        env[name] = os.environ[name]
    servers: list[MCPTools] = []
    for command in args.mcp:
        words = shlex.split(command)
        if not words:
            raise ConfigurationError("--mcp needs a command, e.g. --mcp 'python server.py'")
        servers.append(MCPTools.stdio(words[0], words[1:], env=env or None, exclude=exclude))
    for url in args.mcp_http:
        servers.append(MCPTools.http(url, exclude=exclude))
    return servers


def with_tools(agent: Agent[Any], extra: list[Any]) -> Agent[Any]:
    """A copy of ``agent`` that also offers ``extra`` tools (names must stay unique)."""
    clone = copy.copy(agent)
    tools = (*agent.tools, *extra)
    by_name: dict[str, Any] = {}
    for t in tools:
        if t.name in by_name:
            raise ConfigurationError(
                f"two tools are named {t.name!r} (the agent's and an MCP server's, or two "
                "servers'); leave one out with --mcp-exclude"
            )
        by_name[t.name] = t
    clone.tools = tools
    clone._tools = by_name
    clone._selector = ToolSelector(tools, agent._selector.limit)
    return clone


@contextlib.asynccontextmanager
async def agent_with_servers(
    agent: Agent[Any], args: argparse.Namespace
) -> AsyncIterator[Agent[Any]]:
    """``agent`` with the tools of the servers named on the command line, connected for the
    length of the block (``agent`` itself when none are named)."""
    servers = _servers(args)
    if not servers:
        yield agent
        return
    async with contextlib.AsyncExitStack() as stack:
        extra: list[Any] = []
        for server in servers:
            await stack.enter_async_context(server)
            extra.extend(server)
        yield with_tools(agent, extra)


# --- agentkit mcp serve ---------------------------------------------------------------------------


def _load_target(target: str) -> Any:
    """What ``FILE.py:NAME`` or ``package.module:NAME`` names (``NAME`` defaults to ``agent``);
    what the code prints while loading goes to stderr, since stdout carries the protocol."""
    from .._load import load_target

    with contextlib.redirect_stdout(sys.stderr):
        return load_target(target, "an Agent or a list of tools")


def add_serve_command(subparsers: Any) -> None:
    """``agentkit mcp serve FILE.py:NAME [--as-tool] [--name NAME]``."""
    parser = subparsers.add_parser(
        "mcp",
        help="serve agentkit tools over MCP",
        description="Model Context Protocol commands (need agentkit[mcp]).",
    )
    commands = parser.add_subparsers(dest="mcp_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve an agent's tools (or a list of tools) over stdio",
        description="Serve NAME from FILE.py over MCP on stdin/stdout: an Agent's tools, the "
        "Agent as one tool (--as-tool), or a list of tools.",
    )
    serve.add_argument("target", help="FILE.py:NAME or package.module:NAME")
    serve.add_argument(
        "--as-tool", action="store_true", help="serve the Agent as one tool that runs it"
    )
    serve.add_argument("--name", default="agentkit", help="the server name clients see")
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    target = _load_target(args.target)
    if not isinstance(target, Agent | Tool | list | tuple) and callable(target):
        with contextlib.redirect_stdout(sys.stderr):
            target = target()  # a function that builds the agent or the list
    try:
        from ._server import serve_stdio, tools_to_serve
    except ImportError as exc:
        raise ConfigurationError(
            'agentkit mcp serve needs the MCP SDK: pip install "agentkit[mcp]"'
        ) from exc

    tools_to_serve(target, as_tool=args.as_tool)  # bad targets fail here, before serving
    asyncio.run(serve_stdio(target, as_tool=args.as_tool, name=args.name))
    return 0
