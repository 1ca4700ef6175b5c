"""What can go wrong with an MCP server, as agentkit errors.

A failure of one call while the server stays up is not here: it goes back to the model as a tool
error (the server's ``isError`` result, a JSON-RPC error for the call, or a timeout), like any
other tool's. These errors are for a server that cannot be used at all; raised during a run,
they stop it and carry the transcript (``exc.messages``) as every run error does.
"""

from __future__ import annotations

from ..errors import AgentKitError, ToolDefinitionError

__all__ = [
    "MCPConnectionError",
    "MCPConnectionLost",
    "MCPError",
    "MCPProtocolError",
    "MCPSchemaError",
]


class MCPError(AgentKitError):
    """An MCP server could not be used. ``server`` names it (command or URL, never headers)."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPConnectionError(MCPError):
    """The server could not be started or reached, or did not finish the handshake in time."""


class MCPConnectionLost(MCPError):
    """The server went away during use: its process exited or the connection closed."""


class MCPProtocolError(MCPError):
    """The server answered something that is not valid MCP."""


class MCPSchemaError(MCPError, ToolDefinitionError):
    """A tool's input schema cannot be offered to the model; the message says how to exclude it.

    ``tool_name`` is the server's own name for the tool.
    """

    def __init__(self, message: str, *, server: str, tool_name: str) -> None:
        super().__init__(message, server=server)
        self.tool_name = tool_name
