"""MCP: an agent uses the tools of an MCP server, next to a tool of its own.

The server is this same file run with ``--serve``: a glossary built with the MCP SDK, started
as a subprocess and spoken to over stdio, as any MCP server would be. Its ``define`` tool takes
a pydantic model, so its schema has ``$defs``, ``$ref`` and ``anyOf`` with ``null``: agentkit
turns it into a schema a 3B model and Workers AI take.

Needs ``pip install "agentkit[mcp]"``. Offline by default (a scripted model); on Workers AI
when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are set.

    python examples/mcp_tools.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from pydantic import BaseModel

from agentkit import Agent, ToolCall, tool
from agentkit.models import Model
from agentkit.testing import ScriptedModel

GLOSSARY = {
    "agent": "a model, its tools and a loop that runs the tools it calls",
    "tool": "a function the model can call, described by a JSON schema",
    "mcp": "the Model Context Protocol: a standard way to publish tools to models",
}

QUESTION = "What is MCP, in capitals?"


class Term(BaseModel):
    word: str
    language: str | None = None


def serve() -> None:
    """The MCP server: a glossary (run with --serve)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("glossary")

    @server.tool()
    def define(term: Term) -> str:
        """Look a word up in the project glossary."""
        return GLOSSARY.get(term.word.lower(), f"'{term.word}' is not in the glossary")

    server.run("stdio")


@tool
def shout(text: str) -> str:
    """Write text in capitals.

    Args:
        text: the text to write in capitals
    """
    return text.upper()


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()
    return ScriptedModel(
        [
            ToolCall(name="glossary_define", arguments={"term": {"word": "MCP"}}),
            ToolCall(name="shout", arguments={"text": GLOSSARY["mcp"]}),
            f"MCP is {GLOSSARY['mcp'].upper()}.",
        ]
    )


async def main() -> None:
    from agentkit.mcp import MCPTools

    # The server's tools get the prefix "glossary_" (define -> glossary_define).
    async with MCPTools.stdio(sys.executable, [__file__, "--serve"], prefix="glossary") as glossary:
        for mcp_tool in glossary:
            print(f"{mcp_tool.name}: {json.dumps(mcp_tool.parameters)}")
        agent = Agent(make_model(), [*glossary, shout])
        result = await agent.run(QUESTION)
    for message in result.messages:
        if message.role == "tool":
            print(f"[{message.name} -> {message.content}]")
    print(f"answer: {result.output}")
    print(f"{result.steps} model requests, {result.usage.tool_calls} tool calls")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        asyncio.run(main())
