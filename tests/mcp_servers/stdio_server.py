"""A real MCP server process (MCP SDK, stdio). ``--fail-start`` exits before the handshake;
``--hang`` never answers. The ``crash`` tool ends the process in the middle of a call."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

# The failure modes come first, before the SDK is imported: the tests need no more.
if "--fail-start" in sys.argv:
    print(f"config error: token {os.environ.get('GLOSSARY_TOKEN', '')} rejected", file=sys.stderr)
    sys.exit(2)
if "--hang" in sys.argv:
    time.sleep(3600)

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(
        name="lookup",
        description="Look a word up in the glossary.",
        input_schema={
            "type": "object",
            "properties": {"word": {"type": "string", "description": "The word."}},
            "required": ["word"],
        },
    ),
    types.Tool(name="crash", description="Stops the server.", input_schema={"type": "object"}),
]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "crash":
        print("fatal: out of memory (simulated)", file=sys.stderr, flush=True)
        os._exit(3)
    word = (params.arguments or {}).get("word", "")
    return types.CallToolResult(
        content=[types.TextContent(text=f"{word}: a thing in the glossary")]
    )


server = Server("glossary", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    if "--fail-start" in sys.argv:
        print(
            f"config error: token {os.environ.get('GLOSSARY_TOKEN', '')} rejected", file=sys.stderr
        )
        sys.exit(2)
    if "--hang" in sys.argv:
        await anyio.sleep(3600)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
