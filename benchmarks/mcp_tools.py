"""MCP tools: request bytes per step with 50 tools, with and without tool selection, and the
time to connect to a server and list its tools (in-process and over stdio).

- Request size: an agent with the 50 tools of an in-process MCP server runs three steps (two
  tool calls, then an answer) against the local wire server; the body of each Workers AI
  request is measured, for ``max_tools_per_request`` None (every tool), 8 and 4.
- Connect and list: ``MCPTools.from_server`` (no transport) and ``MCPTools.stdio`` (a Python
  subprocess running the same 50-tool server with the MCP SDK), median of several connects.
- Selection cost: the time ``max_tools_per_request=8`` adds to a step (ranking 50 tools).

Run by hand (needs ``pip install -e ".[mcp]"``)::

    python benchmarks/mcp_tools.py
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path: keep any module there from
# shadowing the SDK's packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from mcp.server import Server  # noqa: E402

from agentkit import Agent, Message, WorkersAI  # noqa: E402
from agentkit._selection import ToolSelector  # noqa: E402
from agentkit.mcp import MCPTools  # noqa: E402
from agentkit.testing import Reply, WireServer  # noqa: E402

TOPICS = [
    "weather forecast", "currency exchange rate", "stock price quote", "flight status",
    "hotel booking", "restaurant reservation", "movie showtimes", "train timetable",
    "package tracking", "translate text", "dictionary definition", "unit conversion",
    "calendar event", "send email", "read email inbox", "create invoice", "pay invoice",
    "bank balance", "crypto wallet", "news headlines", "sports scores", "recipe search",
    "nutrition facts", "fitness workout", "sleep tracker", "music playlist", "podcast episodes",
    "book library loan", "parking spot", "electric car charging", "taxi ride", "bike rental",
    "pharmacy refill", "doctor appointment", "insurance claim", "tax return", "mortgage rate",
    "real estate listing", "job postings", "salary estimate", "github issues", "jira ticket",
    "slack message", "wiki page", "spreadsheet cell", "pdf summary", "image resize",
    "qr code", "password vault", "domain whois",
]  # fmt: skip

SERVER_CODE = textwrap.dedent(
    """
    import anyio
    import mcp.types as types
    from mcp.server import Server
    from mcp.server.stdio import stdio_server

    TOPICS = {topics!r}


    def spec(topic):
        return types.Tool(
            name=topic.replace(" ", "_"),
            description=f"Look up or manage {{topic}} for the user: search, create or update.",
            input_schema={{
                "type": "object",
                "properties": {{
                    "query": {{"type": "string", "description": f"What {{topic}} to handle."}},
                    "limit": {{"anyOf": [{{"type": "integer"}}, {{"type": "null"}}], "default": None}},
                }},
                "required": ["query"],
            }},
        )


    SPECS = [spec(t) for t in TOPICS]


    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=SPECS)


    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(text=params.name + ": done")])


    server = Server("bench", on_list_tools=list_tools, on_call_tool=call_tool)


    async def main():
        async with stdio_server() as (r, w):
            await server.run(r, w, server.create_initialization_options())


    anyio.run(main)
    """
).format(topics=TOPICS)


def build_server() -> Server[Any]:
    namespace: dict[str, Any] = {}
    code = SERVER_CODE.split("async def main")[0]
    exec(code, namespace)
    server: Server[Any] = namespace["server"]
    return server


async def request_sizes(limit: int | None) -> list[int]:
    async with (
        WireServer(validate=False) as wire,
        MCPTools.from_server(build_server()) as tools,
    ):
        wire.add(
            Reply.calls(("weather_forecast", {"query": "Oslo"})),
            Reply.calls(("unit_conversion", {"query": "4 C in F"})),
            Reply.answer("4 °C (39 °F), cloudy."),
        )
        model = WorkersAI(account_id="acct", api_token="token", base_url=wire.base_url)
        async with model:
            agent = Agent(model, list(tools), max_tools_per_request=limit)
            await agent.run("What is the weather forecast for Oslo, in Fahrenheit?")
        return [len(r.raw) for r in wire.requests]


async def connect_times(make: Any, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        async with make() as tools:
            assert len(tools) == 50
        times.append(time.perf_counter() - start)
    return times


def import_times(repeats: int) -> list[float]:
    """Seconds to start Python and import the SDK's stdio server, without any MCP."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mcp.server.stdio"], check=True)
        times.append(time.perf_counter() - start)
    return times


def selection_cost() -> float:
    from agentkit import Tool

    def handle(query: str) -> str:
        return query

    tools = [Tool.from_function(handle, name=t.replace(" ", "_"), description=t) for t in TOPICS]
    selector = ToolSelector(tools, 8)
    messages = [Message(role="user", content="What is the weather forecast for Oslo?")]
    selector.select(messages)  # builds the index once
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        selector.select(messages)
    return (time.perf_counter() - start) / n


async def main() -> None:
    logging.getLogger("agentkit").setLevel(logging.ERROR)  # the many-tools warning is expected
    print("## Request bytes per step, 50 MCP tools (3 steps)\n")
    print("| max_tools_per_request | step 1 | step 2 | step 3 | total | ~tokens per step |")
    print("|---|---:|---:|---:|---:|---:|")
    for limit in (None, 8, 4):
        sizes = await request_sizes(limit)
        per_step = sum(sizes) / len(sizes) / 4  # ~4 bytes per token for JSON-ish English
        cells = " | ".join(f"{s:,}" for s in sizes)
        print(f"| {limit or 'None (all 50)'} | {cells} | {sum(sizes):,} | {per_step:,.0f} |")

    print("\n## Connect and list 50 tools\n")
    print("| server | median | min | runs |")
    print("|---|---:|---:|---:|")
    inproc = await connect_times(lambda: MCPTools.from_server(build_server()), 30)
    print(
        f"| in-process (`from_server`) | {statistics.median(inproc) * 1000:.1f} ms | "
        f"{min(inproc) * 1000:.1f} ms | {len(inproc)} |"
    )
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "server.py"
        script.write_text(SERVER_CODE)
        stdio = await connect_times(lambda: MCPTools.stdio(sys.executable, [str(script)]), 5)
    print(
        f"| stdio subprocess (`stdio`, Python + MCP SDK) | {statistics.median(stdio) * 1000:.0f} ms "
        f"| {min(stdio) * 1000:.0f} ms | {len(stdio)} |"
    )
    imports = import_times(3)
    print(
        f"| of which: start Python and import the SDK, no MCP | {statistics.median(imports) * 1000:.0f} ms "
        f"| {min(imports) * 1000:.0f} ms | {len(imports)} |"
    )
    print(f"\nSelection cost: {selection_cost() * 1e6:.0f} µs per step (50 tools, k=8)")


if __name__ == "__main__":
    asyncio.run(main())
