"""MCP servers for the tests, built with the MCP SDK's own server API.

- :func:`constructs_server`: one tool per schema construct real servers send ($defs/$ref,
  anyOf with null, oneOf, nested objects without descriptions, no properties), plus tools
  for every kind of result (text, isError, image, resources, structured content), a tool
  that raises, a slow tool and one that changes the tool list;
- :func:`many_tools_server`: 50 tools on distinct topics, for tool selection;
- ``stdio_server.py``: the same SDK server as a real subprocess (with a tool that crashes it);
- ``raw_stdio_server.py``: a hand-written stdio server that answers calls with invalid MCP.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp.server import Server

HERE = Path(__file__).parent
STDIO_SERVER = HERE / "stdio_server.py"
RAW_STDIO_SERVER = HERE / "raw_stdio_server.py"

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

CONSTRUCT_SCHEMAS: dict[str, dict[str, Any]] = {
    # $defs/$ref, as pydantic writes nested models (with titles and no descriptions)
    "create_ticket": {
        "$defs": {
            "Person": {
                "type": "object",
                "title": "Person",
                "properties": {
                    "name": {"type": "string", "title": "Name"},
                    "email": {"type": "string", "format": "email", "title": "Email"},
                },
                "required": ["name"],
            },
            "Priority": {"type": "string", "enum": ["low", "high"], "title": "Priority"},
        },
        "type": "object",
        "title": "create_ticketArguments",
        "properties": {
            "title": {"type": "string", "title": "Title", "description": "Short summary."},
            "reporter": {"$ref": "#/$defs/Person"},
            "priority": {"$ref": "#/$defs/Priority", "default": "low"},
        },
        "required": ["title", "reporter"],
    },
    # anyOf with null (Optional[...]) and a default of null
    "search_docs": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "limit": {
                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                "default": None,
                "title": "Limit",
            },
            "since": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        },
        "required": ["query"],
    },
    # oneOf between unrelated types
    "set_timer": {
        "type": "object",
        "properties": {
            "duration": {
                "oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+[smh]$"}],
                "description": "Seconds, or text like 5m.",
            }
        },
        "required": ["duration"],
    },
    # nested objects and arrays without any description
    "add_event": {
        "type": "object",
        "properties": {
            "place": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "geo": {
                        "type": "object",
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    },
                },
                "required": ["city"],
            },
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    # no properties at all (only type), and no type at all
    "ping": {"type": "object"},
    "now": {},
    # recursive $ref (a tree)
    "make_tree": {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
            }
        },
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "required": ["root"],
    },
}

#: Schemas no flat parameter list can express; each test names the construct it must report.
UNEXPRESSIBLE_SCHEMAS: dict[str, dict[str, Any]] = {
    "either_shape": {
        "type": "object",
        "oneOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}},
        ],
    },
    "remote_ref": {
        "type": "object",
        "properties": {"x": {"$ref": "https://example.com/schemas/x.json"}},
    },
    "dangling_ref": {"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}},
    "array_args": {"type": "array", "items": {"type": "string"}},
}


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)])


def constructs_server(*, extra_schemas: dict[str, dict[str, Any]] | None = None) -> Server[Any]:
    """A server with one tool per schema construct and one per kind of result."""
    schemas = {**CONSTRUCT_SCHEMAS, **(extra_schemas or {})}
    specs = [
        types.Tool(
            name=name, description=f"The {name.replace('_', ' ')} tool.", input_schema=schema
        )
        for name, schema in schemas.items()
        if "type" in schema  # the SDK's server refuses a schema without one
    ]
    specs += [
        types.Tool(
            name="fails_softly",
            description="Always reports an error.",
            input_schema={"type": "object"},
        ),
        types.Tool(
            name="raises", description="Raises inside the server.", input_schema={"type": "object"}
        ),
        types.Tool(
            name="slow",
            description="Takes its time.",
            input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
        ),
        types.Tool(
            name="picture",
            description="Returns an image and a resource.",
            input_schema={"type": "object"},
        ),
        types.Tool(
            name="weather.today", description="Structured weather.", input_schema={"type": "object"}
        ),
        types.Tool(
            name="grow", description="Adds a tool to the list.", input_schema={"type": "object"}
        ),
    ]
    calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=specs)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name, args = params.name, dict(params.arguments or {})
        calls.append((name, args))
        if name == "fails_softly":
            return types.CallToolResult(
                content=[types.TextContent(text="the ticket system is read-only today")],
                is_error=True,
            )
        if name == "raises":
            raise RuntimeError("database unreachable")
        if name == "slow":
            await asyncio.sleep(float(args.get("seconds", 30)))
            return _text("finally done")
        if name == "picture":
            return types.CallToolResult(
                content=[
                    types.TextContent(text="Here is the chart."),
                    types.ImageContent(data=PNG, mime_type="image/png"),
                    types.EmbeddedResource(
                        resource=types.TextResourceContents(
                            uri="file:///notes.txt", mime_type="text/plain", text="note body"
                        )
                    ),
                    types.EmbeddedResource(
                        resource=types.BlobResourceContents(
                            uri="file:///data.bin", mime_type="application/octet-stream", blob=PNG
                        )
                    ),
                    types.ResourceLink(uri="file:///big.csv", name="big.csv", mime_type="text/csv"),
                ]
            )
        if name == "weather.today":
            data = {"city": "Oslo", "celsius": 4}
            return types.CallToolResult(
                content=[types.TextContent(text=json.dumps(data))], structured_content=data
            )
        if name == "grow":
            specs.append(
                types.Tool(name="grown", description="New.", input_schema={"type": "object"})
            )
            await ctx.session.send_tool_list_changed()
            return _text("grown")
        return _text(f"{name} ok: {json.dumps(args, sort_keys=True)}")

    server: Server[Any] = Server("constructs", on_list_tools=list_tools, on_call_tool=call_tool)
    server.calls = calls  # type: ignore[attr-defined]
    return server


TOPICS = [
    "weather forecast",
    "currency exchange rate",
    "stock price quote",
    "flight status",
    "hotel booking",
    "restaurant reservation",
    "movie showtimes",
    "train timetable",
    "package tracking",
    "translate text",
    "dictionary definition",
    "unit conversion",
    "calendar event",
    "send email",
    "read email inbox",
    "create invoice",
    "pay invoice",
    "bank balance",
    "crypto wallet",
    "news headlines",
    "sports scores",
    "recipe search",
    "nutrition facts",
    "fitness workout",
    "sleep tracker",
    "music playlist",
    "podcast episodes",
    "book library loan",
    "parking spot",
    "electric car charging",
    "taxi ride",
    "bike rental",
    "pharmacy refill",
    "doctor appointment",
    "insurance claim",
    "tax return",
    "mortgage rate",
    "real estate listing",
    "job postings",
    "salary estimate",
    "github issues",
    "jira ticket",
    "slack message",
    "wiki page",
    "spreadsheet cell",
    "pdf summary",
    "image resize",
    "qr code",
    "password vault",
    "domain whois",
]


def many_tools_server() -> Server[Any]:
    """50 tools, one per topic (``weather_forecast``, ``send_email``...)."""
    specs = [
        types.Tool(
            name=topic.replace(" ", "_"),
            description=f"Look up or manage {topic} for the user.",
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": f"What {topic} to handle."}
                },
                "required": ["query"],
            },
        )
        for topic in TOPICS
    ]
    assert len(specs) == 50

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=specs)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return _text(f"{params.name}: done")

    return Server("many", on_list_tools=list_tools, on_call_tool=call_tool)
