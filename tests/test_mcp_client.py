"""MCPTools against in-process servers built with the MCP SDK: listing, filtering, calls,
results, failures of one call, list changes, the sync form, and whole agent runs over the wire
(every request body checked against the Workers AI input schema by the ``wire`` fixture)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp_servers import UNEXPRESSIBLE_SCHEMAS, constructs_server, many_tools_server
from pydantic import BaseModel

from agentkit import Agent, Tool, tool
from agentkit.errors import (
    ConfigurationError,
    ToolArgumentsError,
    ToolError,
    ToolRetriesExceeded,
    ToolTimeoutError,
)
from agentkit.mcp import MCPSchemaError, MCPTool, MCPTools, build_server
from agentkit.testing import Reply, WireServer


def tool_messages(messages: list[Any]) -> list[Any]:
    return [m for m in messages if m.role == "tool"]


async def test_tools_are_listed_once_and_iterate_as_agentkit_tools() -> None:
    server = constructs_server()
    async with MCPTools.from_server(server) as tools:
        names = [t.name for t in tools]
        assert names[:3] == ["create_ticket", "search_docs", "set_timer"]
        assert "weather_today" in names  # "weather.today" made safe
        assert all(isinstance(t, MCPTool) and isinstance(t, Tool) for t in tools)
        by_name = {t.name: t for t in tools}
        assert by_name["weather_today"].server_name == "weather.today"
        assert len(tools) == len(names)
    assert "not connected" in repr(tools)


async def test_iterating_before_connecting_says_what_to_do() -> None:
    tools = MCPTools.from_server(constructs_server())
    with pytest.raises(ConfigurationError, match="async with"):
        list(tools)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"include": ["ping", "picture"]}, ["ping", "picture"]),
        ({"include": "s*"}, ["search_docs", "set_timer", "slow"]),
        ({"include": "s*", "exclude": ["slow"]}, ["search_docs", "set_timer"]),
        # patterns match the server's own names, before the prefix
        ({"include": ["ping", "weather.*"], "prefix": "ops"}, ["ops_ping", "ops_weather_today"]),
    ],
)
async def test_include_exclude_and_prefix(options: dict[str, Any], expected: list[str]) -> None:
    async with MCPTools.from_server(constructs_server(), **options) as tools:
        assert [t.name for t in tools] == expected


def test_bad_options_are_refused_up_front() -> None:
    server = constructs_server()
    with pytest.raises(ConfigurationError, match="prefix"):
        MCPTools.from_server(server, prefix="has space")
    with pytest.raises(ConfigurationError, match="timeout"):
        MCPTools.from_server(server, timeout=0)
    with pytest.raises(ConfigurationError, match="args must be a list"):
        MCPTools.stdio("python", "server.py")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="http"):
        MCPTools.http("localhost:8000/mcp")


async def test_a_tool_with_a_schema_that_cannot_be_expressed_is_refused_on_connect() -> None:
    server = constructs_server(
        extra_schemas={"either_shape": UNEXPRESSIBLE_SCHEMAS["either_shape"]}
    )
    with pytest.raises(MCPSchemaError) as info:
        async with MCPTools.from_server(server):
            pass
    assert info.value.tool_name == "either_shape"
    assert "exclude=['either_shape']" in str(info.value)
    async with MCPTools.from_server(server, exclude=["either_shape"]) as tools:
        assert "either_shape" not in [t.name for t in tools]


async def test_results_text_placeholders_and_structured_content() -> None:
    async with MCPTools.from_server(constructs_server()) as tools:
        by_name = {t.name: t for t in tools}
        picture = await by_name["picture"].run({})
        lines = picture.content.splitlines()
        assert lines[0] == "Here is the chart."
        assert lines[1].startswith("[image: image/png, ") and "not shown" in lines[1]
        assert lines[2:4] == ["[resource <file:///notes.txt>, text/plain]", "note body"]
        assert lines[4].startswith("[resource <file:///data.bin>, application/octet-stream")
        assert lines[5] == "[resource link: big.csv <file:///big.csv>, text/csv]"
        assert "iVBOR" not in picture.content  # no base64 for a text-only model
        weather = await by_name["weather_today"].run({})
        assert json.loads(weather.content) == {"city": "Oslo", "celsius": 4}  # not repeated


async def test_arguments_are_fixed_leniently_then_checked_against_the_servers_schema() -> None:
    server = constructs_server()
    async with MCPTools.from_server(server) as tools:
        search = {t.name: t for t in tools}["search_docs"]
        result = await search.run('{"query": "retries", "limit": "3", "since": null}')
        assert server.calls[-1] == ("search_docs", {"query": "retries", "limit": 3})
        assert result.content == 'search_docs ok: {"limit": 3, "query": "retries"}'
        calls_before = len(server.calls)
        with pytest.raises(ToolArgumentsError) as info:
            await search.run({"limit": 0, "sort": "date"})
        text = str(info.value)
        assert "sort: unknown argument; allowed arguments: query, limit, since" in text
        assert "query: missing (required)" in text
        with pytest.raises(ToolArgumentsError, match="limit: 0 is less than the minimum of 1"):
            await search.run({"query": "x", "limit": 0})
        assert len(server.calls) == calls_before  # bad calls never reach the server


async def test_an_is_error_result_and_a_raising_tool_are_errors_the_model_reads() -> None:
    async with MCPTools.from_server(constructs_server()) as tools:
        by_name = {t.name: t for t in tools}
        with pytest.raises(ToolError, match="reported an error: the ticket system is read-only"):
            await by_name["fails_softly"].run({})
        with pytest.raises(ToolError, match=r"database unreachable .*the server is still running"):
            await by_name["raises"].run({})


async def test_a_call_past_the_timeout_is_a_tool_timeout_and_the_server_keeps_working() -> None:
    async with MCPTools.from_server(constructs_server(), timeout=0.2) as tools:
        by_name = {t.name: t for t in tools}
        with pytest.raises(ToolTimeoutError, match=r"timed out after 0\.2 s"):
            await by_name["slow"].run({"seconds": 30})
        assert (await by_name["ping"].run({})).content == "ping ok: {}"


async def test_a_list_changed_notification_refreshes_the_cached_list() -> None:
    server = constructs_server()
    async with MCPTools.from_server(server) as tools:
        before = {t.name: t for t in tools}
        assert "grown" not in before
        await before["grow"].run({})
        for _ in range(200):  # the refresh runs in the background
            if "grown" in [t.name for t in tools]:
                break
            await asyncio.sleep(0.01)
        after = {t.name: t for t in tools}
        assert "grown" in after and not tools.stale
        assert after["ping"] is before["ping"]  # unchanged tools keep their identity
        assert [t.name for t in await tools.refresh()] == list(after)


async def test_an_agent_run_with_mcp_tools_over_the_wire(
    wire: WireServer, workers_ai: Any, check_transcript: Any
) -> None:
    server = constructs_server()

    @tool
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    wire.add(
        Reply.calls(
            ("create_ticket", {"title": "Printer", "reporter": '{"name": "Ana"}'}),
            ("search_docs", {"query": "printer", "limit": "2"}),
            ("raises", {}),
        ),
        Reply.calls(("fails_softly", {}), ("shout", {"text": "done"})),
        Reply.answer("Filed."),
    )
    async with MCPTools.from_server(server) as docs, workers_ai(wire) as model:
        result = await Agent(model, [*docs, shout]).run("File a ticket about the printer.")
    assert result.output == "Filed."
    check_transcript(result.messages, tool_results=5)
    results = tool_messages(result.messages)
    assert [m.is_error for m in results] == [False, False, True, True, False]
    assert "database unreachable" in results[2].content
    assert server.calls[:2] == [
        ("create_ticket", {"title": "Printer", "reporter": {"name": "Ana"}}),
        ("search_docs", {"query": "printer", "limit": 2}),
    ]
    # every request offered the converted tools; the wire fixture checked each body
    sent = wire.requests[0].body["tools"]
    assert len(sent) == len(docs) + 1
    reporter = next(t for t in sent if t["function"]["name"] == "create_ticket")["function"]
    assert reporter["parameters"]["properties"]["reporter"]["type"] == "object"


async def test_many_tools_with_selection_over_the_wire(wire: WireServer, workers_ai: Any) -> None:
    wire.add(Reply.calls(("weather_forecast", {"query": "Oslo"})), Reply.answer("Cold."))
    async with MCPTools.from_server(many_tools_server()) as many, workers_ai(wire) as model:
        agent = Agent(model, list(many), max_tools_per_request=8)
        result = await agent.run("What is the weather forecast for Oslo?")
    assert result.output == "Cold."
    offered = [[t["function"]["name"] for t in r.body["tools"]] for r in wire.requests]
    assert all(len(names) == 8 for names in offered)
    assert "weather_forecast" in offered[0]
    # the same choice in the same order: the tools part of the request is byte-identical
    assert wire.requests[0].body["tools"] == wire.requests[1].body["tools"]


def test_the_sync_form_for_scripts(wire: WireServer, workers_ai: Any) -> None:
    server = constructs_server()
    wire.add(Reply.calls(("ping", {})), Reply.answer("pong"))
    with MCPTools.from_server(server, include=["ping"]) as tools, workers_ai(wire) as model:
        result = Agent(model, list(tools)).run_sync("ping it")
        # a call from another event loop is forwarded to the connection's loop
        direct = asyncio.run(tools.tools[0].run({}))
    assert result.output == "pong"
    assert tool_messages(result.messages)[0].content == "ping ok: {}"
    assert direct.content == "ping ok: {}"
    assert [name for name, _ in server.calls] == ["ping", "ping"]
    assert [t["function"]["name"] for t in wire.requests[0].body["tools"]] == ["ping"]


async def test_agentkit_tools_round_trip_through_an_mcp_server_unchanged() -> None:
    @tool
    def convert(amount: float, unit: str = "km") -> str:
        """Convert a distance.

        Args:
            amount: how far.
            unit: the unit to convert to.
        """
        return f"{amount} {unit}"

    async with MCPTools.from_server(build_server([convert])) as served:
        (remote,) = list(served)
        assert remote.parameters == convert.parameters
        assert remote.description == convert.description
        assert (await remote.run({"amount": "2.5"})).content == "2.5 km"
        with pytest.raises(ToolError, match="amount"):
            await remote.run({"amount": "far"})


class Address(BaseModel):
    street: str
    city: str | None = None


def shop_server() -> MCPServer:
    """A server built the high-level way: tools from annotated Python functions."""
    app = MCPServer("shop")

    @app.tool()
    def ship(to: Address, count: int | None = None) -> dict[str, Any]:
        """Ship a parcel."""
        return {"street": to.street, "count": count}

    @app.tool()
    def broken(x: int) -> str:
        """Always raises."""
        raise ValueError("out of stock")

    return app


async def test_a_server_built_from_python_functions_with_the_sdks_mcpserver() -> None:
    async with MCPTools.from_server(shop_server()) as tools:
        ship_tool, broken_tool = tools.tools
        assert "$defs" in ship_tool.input_schema  # pydantic's schema, as the server sent it
        to = ship_tool.parameters["properties"]["to"]
        assert to["description"] == "To: an object with street, city."
        assert to["properties"]["city"] == {"type": "string"}
        result = await ship_tool.run({"to": '{"street": "Main St"}', "count": "2"})
        assert result.content == '{"street":"Main St","count":2}'  # compact, said once
        with pytest.raises(ToolError, match=r"reported an error: .*broken"):
            await broken_tool.run({"x": 1})


async def test_a_server_that_hangs_on_every_call_ends_the_run_with_its_transcript(
    wire: WireServer, workers_ai: Any, check_transcript: Any
) -> None:
    wire.add(
        Reply.calls(("slow", {"seconds": 30})),
        Reply.calls(("slow", {"seconds": 30})),
        Reply.answer("never reached"),
    )
    async with (
        MCPTools.from_server(constructs_server(), timeout=0.1) as tools,
        workers_ai(wire) as model,
    ):
        agent = Agent(model, list(tools), retries=1)
        with pytest.raises(ToolRetriesExceeded, match="'slow' failed 2 times in a row") as info:
            await agent.run("Take your time.")
    messages = info.value.messages
    check_transcript(messages, "Take your time.", tool_results=2)
    for message in tool_messages(messages):
        assert message.is_error
        assert "timed out after 0.1 s" in message.content and "still running" in message.content


async def test_approval_and_output_caps_apply_to_mcp_tools(
    wire: WireServer, workers_ai: Any
) -> None:
    server = constructs_server()
    wire.add(
        Reply.calls(("ping", {}), ("picture", {})),
        Reply.answer("ok"),
    )
    asked: list[str] = []

    def approve(call: Any) -> bool:
        asked.append(call.name)
        return call.name == "picture"

    options: dict[str, Any] = {"include": ["ping", "picture"], "requires_approval": True}
    async with MCPTools.from_server(server, **options) as tools, workers_ai(wire) as model:
        agent = Agent(model, list(tools), approve=approve, max_tool_output_chars=200)
        result = await agent.run("Show me.")
    assert sorted(asked) == ["picture", "ping"]
    assert [name for name, _ in server.calls] == ["picture"]  # the refused call never ran
    ping, picture = tool_messages(result.messages)
    assert ping.is_error and "did not approve" in ping.content
    assert len(picture.content) <= 200 and "[output cut" in picture.content
