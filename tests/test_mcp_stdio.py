"""Real MCP server processes over stdio: a run that uses one, a crash in the middle of a run,
a server that fails to start or hangs, one that breaks the protocol, ``agentkit mcp serve``
(checked with the MCP SDK's own client) and ``agentkit run --mcp``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp_servers import RAW_STDIO_SERVER, STDIO_SERVER

from agentkit import Agent
from agentkit.cli import main
from agentkit.mcp import MCPConnectionError, MCPConnectionLost, MCPProtocolError, MCPTools
from agentkit.testing import Reply, WireServer

PY = sys.executable


def glossary(*args: str, **options: Any) -> MCPTools:
    return MCPTools.stdio(PY, [str(STDIO_SERVER), *args], **options)


async def test_a_server_process_in_a_run_then_a_crash_mid_run_keeps_the_transcript(
    wire: WireServer, workers_ai: Any, check_transcript: Any
) -> None:
    wire.add(
        Reply.calls(("lookup", {"word": "agent"})),
        Reply.calls(("crash", {})),
        Reply.answer("never reached"),
    )
    async with glossary() as tools, workers_ai(wire) as model:
        agent = Agent(model, list(tools))
        with pytest.raises(MCPConnectionLost) as info:
            await agent.run("What is an agent?")
        error = info.value
        assert "the connection closed during a call to 'crash'" in str(error)
        assert "fatal: out of memory (simulated)" in str(error)  # the end of its stderr
        messages = error.messages
        check_transcript(messages, "What is an agent?", open_tail=True)
        assert [m.content for m in messages if m.role == "tool"] == [
            "agent: a thing in the glossary"
        ]
        assert messages[-1].tool_calls[0].name == "crash"  # the unanswered call is kept
        assert error.usage is not None and error.usage.requests == 2
        with pytest.raises(MCPConnectionLost):  # the tools say so from now on
            await tools.tools[0].run({"word": "again"})
    assert wire.pending == 1


async def test_a_server_that_exits_at_start_shows_its_stderr_without_secrets() -> None:
    token = "glossary-secret-0123456789"
    with pytest.raises(MCPConnectionError) as info:
        async with glossary("--fail-start", env={"GLOSSARY_TOKEN": token}):
            pass
    text = str(info.value)
    assert "closed the connection before the handshake finished" in text
    assert "config error: token *** rejected" in text
    assert token not in text and token not in repr(info.value.args)


async def test_a_server_that_never_answers_times_out_at_connect() -> None:
    with pytest.raises(MCPConnectionError, match=r"did not finish starting .* within 1 s"):
        async with glossary("--hang", connect_timeout=1):
            pass


async def test_a_program_that_does_not_exist() -> None:
    with pytest.raises(MCPConnectionError, match="'no-such-mcp-server' was not found"):
        async with MCPTools.stdio("no-such-mcp-server"):
            pass


async def test_a_malformed_answer_is_a_protocol_error_with_the_transcript(
    wire: WireServer, workers_ai: Any, check_transcript: Any
) -> None:
    wire.add(Reply.calls(("broken", {})), Reply.answer("never reached"))
    async with MCPTools.stdio(PY, [str(RAW_STDIO_SERVER)]) as tools, workers_ai(wire) as model:
        with pytest.raises(MCPProtocolError, match="malformed result") as info:
            await Agent(model, list(tools)).run("go")
    check_transcript(info.value.messages, "go", open_tail=True)


# --- agentkit mcp serve, checked with the SDK's client ---------------------------------------------

SERVED = textwrap.dedent(
    '''
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedModel

    print("importing prints nothing on the protocol channel")


    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first.
            b: the second.
        """
        return a + b


    @tool
    def fail() -> str:
        """Always fails."""
        raise ValueError("no luck")


    agent = Agent(ScriptedModel(["the answer is 42"] * 5), [add, fail], name="math")
    tools = [add]
    '''
)


@pytest.fixture(scope="module")
def served_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "served.py"
    path.write_text(SERVED)
    return path


def serve_params(path: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=PY, args=["-m", "agentkit", "mcp", "serve", f"{path}:{extra[0]}", *extra[1:]]
    )


async def test_mcp_serve_offers_an_agents_tools_with_agentkits_schemas(served_file: Path) -> None:
    async with Client(serve_params(served_file, "agent"), mode="legacy") as client:
        listing = (await client.list_tools()).tools
        assert [t.name for t in listing] == ["add", "fail"]
        add = listing[0]
        assert add.description == "Add two numbers."
        assert add.input_schema["properties"]["a"] == {
            "type": "integer",
            "description": "the first.",
        }
        result = await client.call_tool("add", {"a": "2", "b": 3})
        assert not result.is_error and result.content[0].text == "5"  # type: ignore[union-attr]
        failed = await client.call_tool("fail", {})
        assert failed.is_error and "no luck" in failed.content[0].text  # type: ignore[union-attr]
        bad = await client.call_tool("add", {"a": "two"})
        assert bad.is_error and "Invalid arguments for tool 'add'" in bad.content[0].text  # type: ignore[union-attr]


async def test_mcp_serve_as_tool_and_a_list_of_tools(served_file: Path) -> None:
    async with Client(serve_params(served_file, "agent", "--as-tool"), mode="legacy") as client:
        (only,) = (await client.list_tools()).tools
        assert only.name == "math" and list(only.input_schema["properties"]) == ["request"]
        result = await client.call_tool("math", {"request": "what is six times seven?"})
        assert result.content[0].text == "the answer is 42"  # type: ignore[union-attr]
    async with Client(serve_params(served_file, "tools"), mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["add"]


def test_mcp_serve_refuses_a_bad_target(served_file: Path) -> None:
    done = subprocess.run(
        [PY, "-m", "agentkit", "mcp", "serve", f"{served_file}:nothing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "defines no 'nothing'" in done.stderr and done.stdout == ""


# --- agentkit run --mcp ------------------------------------------------------------------------------


def test_agentkit_run_with_an_mcp_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            from agentkit import Agent, ToolCall
            from agentkit.testing import ScriptedModel

            model = ScriptedModel([ToolCall(name="lookup", arguments={"word": "tool"}), "done"])
            agent = Agent(model)
            """
        )
    )
    command = f"{PY} {STDIO_SERVER}"
    status = main(
        [
            "run",
            f"{script}:agent",
            "define tool",
            "--mcp",
            command,
            "--mcp-exclude",
            "crash",
            "--json",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert '"content": "tool: a thing in the glossary"' in out
    assert '"output": "done"' in out


def test_agentkit_run_says_when_an_mcp_server_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "from agentkit import Agent\nfrom agentkit.testing import ScriptedModel\nagent = Agent(ScriptedModel(['x']))\n"
    )
    status = main(["run", f"{script}:agent", "hi", "--mcp", "no-such-mcp-server --flag"])
    assert status == 1
    err = capsys.readouterr().err
    assert "MCPConnectionError" in err and "'no-such-mcp-server' was not found" in err
    status = main(["run", f"{script}:agent", "hi", "--mcp", "x", "--mcp-env", "NO_SUCH_VAR_42"])
    assert status == 2
    assert "--mcp-env NO_SUCH_VAR_42: the variable is not set" in capsys.readouterr().err


def test_import_agentkit_does_not_import_the_mcp_sdk() -> None:
    code = (
        "import sys, agentkit, agentkit.mcp, agentkit.cli; agentkit.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'agentkit.patterns'))))"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_secret_looking_arguments_are_hidden_from_the_server_name() -> None:
    tools = MCPTools.stdio("npx", ["srv", "--api-key", "k-123", "--token=t-456", "--verbose", "x"])
    assert tools.server == "npx srv --api-key *** --token=*** --verbose x"
