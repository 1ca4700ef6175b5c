"""Prompt caching on Workers AI: the session-affinity header, a byte-stable prefix, cached tokens."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from _secrets import SECRET_TOKEN

from agentkit import Agent, ConfigurationError, Message, ToolContext, session_affinity, tool
from agentkit.models import OpenAICompatible, WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer

AFFINITY = "x-session-affinity"
SYSTEM = "You add numbers. Use the tools."


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
def lookup(key: str, exact: bool = False) -> str:
    """Look a key up.

    Args:
        key: The key.
        exact: Only exact matches.
    """
    return f"value of {key}"


def three_calls(request: WireRequest) -> Reply:
    """Three tool steps (arguments with nested values and non-ASCII text), then an answer."""
    done = sum(1 for m in request.messages if m.get("role") == "tool")
    usage = {
        "prompt_tokens": 100 + 10 * done,
        "completion_tokens": 5,
        "total_tokens": 105 + 10 * done,
        "prompt_tokens_details": {"cached_tokens": 90 * done},
    }
    if done == 0:
        return Reply.calls(("add", {"a": 1, "b": 2}), usage=usage)
    if done == 1:
        return Reply.calls(
            ("lookup", {"key": "Zürich ✓", "exact": True}), ("add", {"b": 4, "a": 3}), usage=usage
        )
    return Reply.answer("Done: 3 and 7.", usage=usage)


def _key(request: WireRequest) -> str | None:
    return request.headers.get(AFFINITY)


def _messages_end(raw: bytes) -> int:
    """Where the messages array of a request body ends (the body's settings follow it)."""
    return raw.rindex(b'],"')


async def test_a_run_sends_one_affinity_key_its_run_id(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=[add, lookup], system_prompt=SYSTEM)
            first = await agent.run("Add.")
            second = await agent.run("Add again.")
        keys = [_key(r) for r in server.requests]
        assert server.violations == []
    assert len(keys) == 6
    assert keys[:3] == [first.run_id] * 3
    assert keys[3:] == [second.run_id] * 3
    assert first.run_id != second.run_id


async def test_session_affinity_block_sets_the_key_of_every_run_inside(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=[add, lookup])
            with session_affinity("chat-42"):
                await agent.run("Add.")
                events = [e async for e in agent.stream("Stream it.")]
            await agent.run("Outside.")
        keys = [_key(r) for r in server.requests]
    assert events  # the streamed run went through
    assert keys[:6] == ["chat-42"] * 6
    assert keys[6:] != ["chat-42"] * 3 and len(set(keys[6:])) == 1


@pytest.mark.parametrize("setting, expected", [(False, None), ("my-key.1", "my-key.1")])
async def test_the_backend_setting_turns_it_off_or_fixes_the_key(
    workers_ai: Callable[..., WorkersAI], setting: bool | str, expected: str | None
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server, session_affinity=setting) as model:
            await Agent(model, tools=[add, lookup]).run("Add.")
        assert [_key(r) for r in server.requests] == [expected] * 3


async def test_the_openai_route_of_workers_ai_sends_it_too(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            result = await Agent(model.openai(), tools=[add, lookup]).run("Add.")
        assert {r.api for r in server.requests} == {"openai"}
        assert [_key(r) for r in server.requests] == [result.run_id] * 3
        assert result.usage.cached_tokens == 90 + 270


async def test_a_plain_openai_compatible_server_gets_no_header_by_default() -> None:
    with WireServer(handler=three_calls) as server:
        async with OpenAICompatible("m", base_url=server.url + "/v1") as model:
            await Agent(model, tools=[add, lookup]).run("Add.")
        assert [_key(r) for r in server.requests] == [None] * 3


async def test_a_callers_own_http_client_sends_the_header_too(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    import httpx

    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with httpx.AsyncClient() as client:
            model = workers_ai(server, http_client=client)
            result = await Agent(model, tools=[add, lookup]).run("Add.")
        assert [_key(r) for r in server.requests] == [result.run_id] * 3
        assert all(r.authorized for r in server.requests)


@pytest.mark.parametrize("bad", ["", "has space", "line\nbreak", "x" * 300, "é"])
def test_a_bad_key_is_refused_with_what_is_allowed(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="session_affinity key"):
        WorkersAI(account_id="a", api_token="t", session_affinity=bad)
    with pytest.raises(ConfigurationError, match="session affinity key"), session_affinity(bad):
        pass


@pytest.mark.parametrize("stream", [False, True])
async def test_each_request_starts_with_the_previous_one_byte_for_byte(
    workers_ai: Callable[..., WorkersAI], stream: bool
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=[add, lookup], system_prompt=SYSTEM)
            if stream:
                [e async for e in agent.stream("Add.")]
            else:
                await agent.run("Add.")
            bodies = [r.raw for r in server.requests]
        assert server.violations == []
    assert len(bodies) == 3
    for before, after in itertools.pairwise(bodies):
        prefix = before[: _messages_end(before)]
        # Tool definitions, the system prompt and every earlier message, unchanged and first.
        assert after.startswith(prefix)
        assert prefix.startswith(b'{"tools":[')
        assert SYSTEM.encode() in prefix
        assert len(json.loads(after)["messages"]) > len(json.loads(before)["messages"])


async def test_reused_encodings_equal_a_fresh_encoding(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    # Within a run each message is encoded once; the bytes must be what encoding it anew gives.
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            result = await Agent(model, tools=[add, lookup], system_prompt=SYSTEM).run("Add.")
            last = server.requests[-1].raw
            fresh, _ = model._messages_body(result.messages[:-1], [add, lookup], None, False)
    assert last == fresh


async def test_cached_tokens_are_summed_over_the_run(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=[add, lookup])
            result = await agent.run("Add.")
            streamed: Any = None
            async for event in agent.stream("Add."):
                streamed = getattr(event, "result", streamed)
    assert result.usage.cached_tokens == 0 + 90 + 270
    assert result.usage.prompt_tokens == 100 + 110 + 130
    assert streamed.usage.cached_tokens == 360
    assert (result.usage + streamed.usage).cached_tokens == 720


async def test_a_transcript_changed_by_a_tool_is_encoded_anew(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    @tool
    def forget(context: ToolContext[None], key: str) -> str:
        """Replace the user's first message.

        Args:
            key: Unused.
        """
        context.messages[0] = Message.user("REDACTED")
        return "done"

    def handler(request: WireRequest) -> Reply:
        if not any(m.get("role") == "tool" for m in request.messages):
            return Reply.calls(("forget", {"key": "x"}))
        return Reply.answer("ok")

    with WireServer(handler=handler, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            await Agent(model, tools=[forget]).run("secret details")
        first, second = (r.messages for r in server.requests)
    assert first[0]["content"] == "secret details"
    assert second[0]["content"] == "REDACTED"


async def test_tool_selection_keeps_the_runs_offer_so_the_prefix_holds(
    workers_ai: Callable[..., WorkersAI],
) -> None:
    from test_tool_selection import TOOLS

    result_text = (
        "Sent. Ana replied: check my flight status, book a taxi ride and a hotel room, "
        "and the weather forecast"
    )

    def handler(request: WireRequest) -> Reply:
        done = sum(1 for m in request.messages if m.get("role") == "tool")
        if done < 2:
            return Reply.calls(("send_email", {"query": f"Ana {done}"}))
        return Reply.answer("Done.")

    @tool(name="send_email")
    def send_email(query: str) -> str:
        """Send an email.

        Args:
            query: To whom and what.
        """
        return result_text

    tools = [send_email if t.name == "send_email" else t for t in TOOLS]
    with WireServer(handler=handler, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=tools, max_tools_per_request=4)
            await agent.run("Send an email to Ana about the invoice")
        bodies = [r.raw for r in server.requests]
        offered = [[t["function"]["name"] for t in r.body["tools"]] for r in server.requests]
    # The tool results talk of flights, taxis, hotels and weather: re-ranked afresh, the offer
    # would change after the first step. Within the run it stays as it was.
    assert offered == [["send_email", "read_email_inbox", "create_invoice", "pay_invoice"]] * 3
    for before, after in itertools.pairwise(bodies):
        assert after.startswith(before[: _messages_end(before)])


async def test_a_batch_gives_each_input_its_own_key_and_reports_cached_tokens(
    workers_ai: Callable[..., WorkersAI], tmp_path: Any
) -> None:
    from agentkit.jobs import run_batch, summary

    inputs = [{"id": "a", "input": "Add."}, {"id": 7, "input": "Add more."}]
    with WireServer(handler=three_calls, api_token=SECRET_TOKEN) as server:
        async with workers_ai(server) as model:
            agent = Agent(model, tools=[add, lookup])
            report = await run_batch(agent, inputs, output=tmp_path / "out.jsonl", concurrency=1)
            first = [_key(r) for r in server.requests]
            await run_batch(agent, inputs[:1], output=tmp_path / "again.jsonl")
            again = [_key(r) for r in server.requests[len(first) :]]
    assert len(first) == 6 and len(set(first[:3])) == 1 and len(set(first[3:])) == 1
    assert first[0] != first[3] and str(first[0]).startswith("input-")
    assert again == first[:3]  # the same input keeps its key in a later job
    assert report.usage.cached_tokens == 2 * 360
    assert "720 prompt tokens from the cache" in summary(report)
