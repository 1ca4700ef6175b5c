"""MCPTools.http against a real streamable HTTP MCP server on 127.0.0.1 (the SDK's own app,
served by uvicorn in a thread, once for the module)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from mcp_servers import constructs_server

from agentkit.errors import ToolError
from agentkit.mcp import MCPConnectionError, MCPTools

SECRET = "Bearer mcp-http-secret-42"


class HeaderLog:
    """ASGI middleware that keeps the Authorization header of each HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"authorization")
            self.seen.append(value.decode() if value else None)
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, HeaderLog]]:
    app = HeaderLog(constructs_server().streamable_http_app())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_tools_over_http_with_headers(http_server: tuple[str, HeaderLog]) -> None:
    url, log = http_server
    async with MCPTools.http(
        url, headers={"Authorization": SECRET}, include=["ping", "raises"]
    ) as tools:
        assert [t.name for t in tools] == ["ping", "raises"]
        ping, raises = tools.tools
        assert (await ping.run({})).content == "ping ok: {}"
        with pytest.raises(ToolError, match="database unreachable"):
            await raises.run({})
        assert SECRET not in repr(tools)
    assert log.seen and all(value == SECRET for value in log.seen)


async def test_an_http_server_that_is_not_there() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://user:pw@127.0.0.1:{port}/mcp?token=abc"
    with pytest.raises(MCPConnectionError) as info:
        async with MCPTools.http(url, headers={"Authorization": SECRET}, connect_timeout=10):
            pass
    text = str(info.value)
    assert f"http://127.0.0.1:{port}/mcp" in text
    assert "pw" not in text and "token=abc" not in text and SECRET not in text
