import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from agentkit import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    Message,
    MissingCredentialsError,
    ModelResponseError,
    ModelSettings,
    ResponseDone,
    TextDelta,
    ToolCall,
    ToolResult,
)
from agentkit.models import Model, OpenAICompatible, WorkersAI
from agentkit.settings import DEFAULT_MAX_TOKENS
from agentkit.testing_server import Reply, WireServer, schema_violations
from agentkit.tools import tool

MODEL_PATH = "/accounts/acct/ai/run/@cf/meta/llama-3.2-3b-instruct"
TOKEN = "secret-token-value-123"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: City name, e.g. Paris.
    """
    return f"sunny in {city}"


@tool
def get_time(tz: str = "UTC") -> str:
    """Current time.

    Args:
        tz: Time zone.
    """
    return "noon"


TOOLS = [get_weather, get_time]


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer(api_token=TOKEN) as wire:
        yield wire
        assert wire.violations == []  # every body sent validated against the seed schema


def make(server: WireServer, **kwargs: Any) -> WorkersAI:
    options: dict[str, Any] = {
        "account_id": "acct",
        "api_token": TOKEN,
        "base_url": server.base_url,
        "backoff_base": 0.001,
        "backoff_max": 0.005,
        "timeout": 5,
    }
    options.update(kwargs)
    return WorkersAI(**options)


def test_is_a_model_and_sends_text_requests(server: WireServer) -> None:
    server.add("Paris is the capital.")
    with make(server) as model:
        assert isinstance(model, Model)
        response = model.request_sync([Message.system("Be brief."), Message.user("Capital?")], [])
    assert response.text == "Paris is the capital."
    assert response.tool_calls == [] and response.finish_reason == "stop"
    assert response.usage.total_tokens > 0 and response.usage.requests == 1
    (request,) = server.requests
    assert request.path == MODEL_PATH  # the model name is sent unescaped
    assert request.body == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital?"},
        ],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": False,
    }
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers and request.authorized


@pytest.mark.parametrize("style", ["function", "flat"])
@pytest.mark.parametrize("shape", ["openai", "legacy"])
async def test_structured_tool_calls_in_both_shapes_and_styles(
    server: WireServer, style: str, shape: str
) -> None:
    server.add(Reply.calls(("get_weather", {"city": "Paris"}), ("get_time", {}), shape=shape))  # type: ignore[arg-type]
    async with make(server, tool_style=style) as model:
        response = await model.request([Message.user("Weather?")], TOOLS)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert len({c.id for c in response.tool_calls}) == 2
    assert response.finish_reason == "tool_calls"
    tools = server.requests[0].body["tools"]
    if style == "function":
        assert tools[0]["type"] == "function" and tools[0]["function"]["name"] == "get_weather"
    else:
        assert tools[0]["name"] == "get_weather" and "function" not in tools[0]


async def test_server_ids_kept_when_unique_and_replaced_when_repeated(server: WireServer) -> None:
    same = [ToolCall(id="x", name="get_time", arguments={}), ToolCall(id="x", name="get_time")]
    server.add(Reply.calls(ToolCall(id="srv-1", name="get_time")), Reply.calls(*same))
    async with make(server) as model:
        first = await model.request([Message.user("t")], TOOLS)
        second = await model.request([Message.user("t")], TOOLS)
    assert first.tool_calls[0].id == "srv-1"
    ids = [c.id for c in second.tool_calls]
    assert len(set(ids)) == 2 and "x" not in ids


@pytest.mark.parametrize("stream", [False, True])
async def test_server_ids_already_used_in_the_conversation_are_replaced(
    server: WireServer, stream: bool
) -> None:
    earlier = ToolCall(id="chatcmpl-tool-1", name="get_time", arguments={})
    history = [
        Message.user("t"),
        Message.assistant(None, [earlier]),
        Message.tool(ToolResult(content="noon"), call=earlier),
    ]
    server.add(Reply.calls(ToolCall(id="chatcmpl-tool-1", name="get_time")))
    async with make(server) as model:
        if stream:
            events = [e async for e in model.stream(history, TOOLS)]
            assert isinstance(events[-1], ResponseDone)
            response = events[-1].response
        else:
            response = await model.request(history, TOOLS)
    assert response.tool_calls[0].id != "chatcmpl-tool-1"


async def test_calls_written_as_text_are_recovered_for_offered_tools_only(
    server: WireServer,
) -> None:
    server.add(
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Rome"}}<|eom_id|>',
        "[get_time(tz='CET'), get_weather(city='Oslo')]",
        '{"name": "rm_rf", "parameters": {}}',
    )
    async with make(server) as model:
        json_call = await model.request([Message.user("w")], TOOLS)
        pythonic = await model.request([Message.user("w")], TOOLS)
        unknown = await model.request([Message.user("w")], TOOLS)
    assert [(c.name, c.arguments) for c in json_call.tool_calls] == [
        ("get_weather", {"city": "Rome"})
    ]
    assert json_call.text is None  # the call text is not a final answer
    assert [c.name for c in pythonic.tool_calls] == ["get_time", "get_weather"]
    assert unknown.tool_calls == [] and unknown.text == '{"name": "rm_rf", "parameters": {}}'


async def test_history_with_tool_calls_and_results_is_sent_as_wire_md_describes(
    server: WireServer,
) -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    history = [
        Message.user("Weather in Paris?"),
        Message.assistant(None, [call]),
        Message.tool(ToolResult(content="sunny"), call=call),
        Message(role="tool", content="orphan result", tool_call_id="call_1"),
    ]
    server.add("It is sunny.")
    async with make(server) as model:
        await model.request(history, TOOLS)
    messages = server.requests[0].messages
    assert messages[1] == {
        "role": "assistant",
        "content": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "name": "get_weather",
        "tool_call_id": "call_1",
        "content": "sunny",  # a string result is sent as is, not JSON-quoted
    }
    assert messages[3]["name"] == "get_weather"  # found from the call id
    assert all(isinstance(m["content"], str) for m in messages)


async def test_tool_definitions_are_completed_for_the_schema_and_encoded_once(
    server: WireServer,
) -> None:
    class Bare:
        name = "lookup"
        parameters: ClassVar[dict[str, Any]] = {
            "type": "object",
            "properties": {"q": {"anyOf": [{"type": "null"}, {"type": "integer"}]}},
        }
        calls = 0

        def definition(self, style: str = "function") -> dict[str, Any]:
            Bare.calls += 1
            return {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Find.",
                    "parameters": self.parameters,
                },
            }

    bare = Bare()
    server.add("a", "b")
    async with make(server) as model:
        await model.request([Message.user("x")], [bare])  # type: ignore[list-item]
        await model.request([Message.user("y")], [bare])  # type: ignore[list-item]
    assert Bare.calls == 1  # the tools payload is built once per tool set
    sent = server.requests[1].body["tools"][0]["function"]["parameters"]["properties"]["q"]
    assert sent["type"] == "integer" and sent["description"] == "q"


async def test_settings_are_merged_and_checked_before_sending(server: WireServer) -> None:
    server.add("ok")
    async with make(server, settings=ModelSettings(temperature=0.2, top_k=5)) as model:
        await model.request([Message.user("x")], [], ModelSettings(top_k=7, seed=42))
        with pytest.raises(ConfigurationError, match="temperature"):
            await model.request([Message.user("x")], [], ModelSettings(temperature=9))
    body = server.requests[0].body
    assert (body["temperature"], body["top_k"], body["seed"], body["max_tokens"]) == (
        0.2,
        7,
        42,
        DEFAULT_MAX_TOKENS,
    )
    assert len(server.requests) == 1


async def test_too_long_content_is_refused_before_sending(server: WireServer) -> None:
    async with make(server) as model:
        with pytest.raises(ConfigurationError, match="131072"):
            await model.request([Message.user("x" * 131_073)], [])
    assert server.requests == []


async def test_cut_answers_report_length(server: WireServer) -> None:
    server.add(
        Reply.answer(
            "word " * 10, usage={"prompt_tokens": 1, "completion_tokens": 16, "total_tokens": 17}
        )
    )
    async with make(server, settings=ModelSettings(max_tokens=16)) as model:
        response = await model.request([Message.user("x")], [])
    assert response.finish_reason == "length"


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ({"response": {"answer": 42}}, '{"answer": 42}'),
        ({"response": 7}, "7"),
        ({"usage": {"prompt_tokens": 1}}, None),
        ({"response": None, "tool_calls": []}, None),
    ],
)
async def test_response_of_any_type(
    server: WireServer, result: dict[str, Any], text: str | None
) -> None:
    server.add(Reply(body={"result": result, "success": True, "errors": [], "messages": []}))
    async with make(server) as model:
        response = await model.request([Message.user("x")], [])
    assert response.text == text


async def test_failure_envelope_with_status_200_raises(server: WireServer) -> None:
    server.add(
        Reply(
            body={
                "success": False,
                "errors": [{"code": 5006, "message": "oneOf at '/' not met"}],
                "result": None,
            }
        )
    )
    async with make(server) as model:
        with pytest.raises(BadRequestError) as info:
            await model.request([Message.user("x")], [])
    assert "5006" in str(info.value) and "oneOf" in str(info.value)


async def test_prompt_mode(server: WireServer) -> None:
    server.add("completion", "raw completion")
    async with make(server) as model:
        first = await model.complete("Once upon a time")
        second = await model.complete(
            "<|begin_of_text|>Hi",
            raw=True,
            lora="my-adapter",
            settings=ModelSettings(temperature=0),
        )
        with pytest.raises(ConfigurationError, match="1 to 131072"):
            await model.complete("")
    assert (first.text, second.text) == ("completion", "raw completion")
    assert server.requests[0].body == {
        "prompt": "Once upon a time",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": False,
    }
    assert (
        server.requests[1].body["raw"] is True and server.requests[1].body["lora"] == "my-adapter"
    )
    assert "messages" not in server.requests[1].body


async def test_streaming_text_tool_fragments_and_usage(server: WireServer) -> None:
    server.add(
        Reply.answer("Hello there, how are you today?", chunk_chars=3, write_size=7),
        Reply.calls(("get_weather", {"city": "Paris"}), text="Checking.", chunk_chars=4),
        Reply.calls(("get_weather", {"city": "Oslo"}), shape="legacy"),
    )
    async with make(server) as model:
        first = [e async for e in model.stream([Message.user("hi")], TOOLS)]
        second = [e async for e in model.stream([Message.user("hi")], TOOLS)]
        third = [e async for e in model.stream([Message.user("hi")], TOOLS)]
    deltas = [e.text for e in first if isinstance(e, TextDelta)]
    done = first[-1]
    assert isinstance(done, ResponseDone)
    assert (
        len(deltas) > 3
        and "".join(deltas) == done.response.text == "Hello there, how are you today?"
    )
    assert done.response.usage.total_tokens > 0
    assert sum(isinstance(e, ResponseDone) for e in first) == 1
    call_done = second[-1]
    assert isinstance(call_done, ResponseDone)
    assert [(c.name, c.arguments) for c in call_done.response.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert call_done.response.text == "Checking."
    legacy = third[-1]
    assert isinstance(legacy, ResponseDone) and legacy.response.tool_calls[0].arguments == {
        "city": "Oslo"
    }
    assert all(r.stream and r.body["stream"] is True for r in server.requests)


async def test_streamed_text_calls_are_held_back_and_prose_is_not(server: WireServer) -> None:
    server.add(
        Reply.answer('{"name": "get_weather", "parameters": {"city": "Rome"}}', chunk_chars=5),
        Reply.answer("[get_time(tz='UTC')]", chunk_chars=2),
        Reply.answer("{not a call at all}", chunk_chars=4),
        Reply.answer("get_time is a tool I have.", chunk_chars=3),
    )
    async with make(server) as model:
        runs = [[e async for e in model.stream([Message.user("w")], TOOLS)] for _ in range(4)]
    json_call, pythonic, braces, prose = runs
    assert not any(isinstance(e, TextDelta) for e in json_call + pythonic)
    for events in (json_call, pythonic):
        done = events[-1]
        assert isinstance(done, ResponseDone) and len(done.response.tool_calls) == 1
        assert done.response.text is None
    assert [e.text for e in braces if isinstance(e, TextDelta)] == ["{not a call at all}"]
    prose_deltas = [e.text for e in prose if isinstance(e, TextDelta)]
    assert len(prose_deltas) > 1 and "".join(prose_deltas) == "get_time is a tool I have."


async def test_a_server_ignoring_stream_still_gives_events(server: WireServer) -> None:
    server.add(Reply.answer("whole", stream=False))
    async with make(server) as model:
        events = [e async for e in model.stream([Message.user("x")], [])]
    assert events[0] == TextDelta("whole")
    assert isinstance(events[1], ResponseDone) and events[1].response.text == "whole"
    assert len(events) == 2


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    model = WorkersAI()  # no error until first use
    with pytest.raises(MissingCredentialsError) as info:
        model.request_sync([Message.user("x")], [])
    text = str(info.value)
    assert (
        "CLOUDFLARE_ACCOUNT_ID" in text
        and "CLOUDFLARE_API_TOKEN" in text
        and "CLOUDFLARE_AUTH_TOKEN" in text
    )


def test_credentials_and_base_url_from_environment(
    monkeypatch: pytest.MonkeyPatch, server: WireServer
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct")
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setenv("CLOUDFLARE_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", server.base_url + "/")
    server.add("from env")
    with WorkersAI() as model:
        assert model.request_sync([Message.user("x")], []).text == "from env"
    assert server.requests[0].path == MODEL_PATH and server.requests[0].authorized


def test_ai_gateway_route(server: WireServer) -> None:
    server.add("via gateway")
    with make(server, gateway="my-gw", gateway_base_url=server.url + "/v1") as model:
        assert model.request_sync([Message.user("x")], []).text == "via gateway"
    assert server.requests[0].path == "/v1/acct/my-gw/workers-ai/@cf/meta/llama-3.2-3b-instruct"


def test_token_never_in_repr_errors_or_logs(
    server: WireServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentkit")
    server.add(
        Reply.error(429, code=3040, retry_after=0),
        Reply.error(401, code=10000, message=f"Authentication error for {TOKEN}"),
        "ok",
    )
    with make(server) as model:
        assert TOKEN not in repr(model) and "api_token=set" in repr(model)
        with pytest.raises(AuthenticationError) as info:
            model.request_sync([Message.user("x")], [])
        model.request_sync([Message.user("x")], [])
    assert TOKEN not in str(info.value)
    assert "CLOUDFLARE_API_TOKEN" in str(info.value)
    assert any("status=200" in r.getMessage() for r in caplog.records)
    assert any("attempt 1 failed (RateLimitError)" in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_sync_twin_works_inside_a_running_loop(server: WireServer) -> None:
    server.add("one", "two")
    model = make(server)

    async def inside() -> tuple[str | None, str | None, bool]:
        from_loop = (await model.request([Message.user("x")], [])).text
        from_sync = model.request_sync([Message.user("x")], []).text  # on the portal loop
        pools = list(model._transport._pools.values())
        assert len(pools) == 2  # one pool per event loop: this one and the sync portal's
        model.close()  # closes the portal's clients, and schedules this loop's
        for _ in range(100):
            if all(pool.closed for pool in pools):
                break
            await asyncio.sleep(0.01)
        return from_loop, from_sync, all(pool.closed for pool in pools)

    assert asyncio.run(inside()) == ("one", "two", True)
    assert model._transport._pools == {}


async def test_a_callers_http_client_is_used_and_left_open(server: WireServer) -> None:
    server.add("mine")
    async with httpx.AsyncClient() as client:
        async with make(server, http_client=client) as model:
            assert (await model.request([Message.user("x")], [])).text == "mine"
        assert not client.is_closed
    assert server.requests[0].authorized


async def test_openai_endpoint_of_workers_ai(server: WireServer) -> None:
    server.add(Reply.calls(("get_time", {"tz": "UTC"})), "done")
    async with make(server, rate_limit=6000) as model:
        compat = model.openai()
        assert isinstance(compat, OpenAICompatible)
        assert compat._transport.rate_limit is model._transport.rate_limit
        async with compat:
            response = await compat.request([Message.user("x")], TOOLS)
            streamed = [e async for e in compat.stream([Message.user("x")], TOOLS)]
    assert response.tool_calls[0].arguments == {"tz": "UTC"}
    assert isinstance(streamed[-1], ResponseDone) and streamed[-1].response.text == "done"
    assert server.requests[0].path == "/accounts/acct/ai/v1/chat/completions"
    assert server.requests[0].body["model"] == "@cf/meta/llama-3.2-3b-instruct"
    assert TOKEN not in repr(compat)


async def test_mock_transport_bodies_validate_and_odd_envelopes_parse() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        assert schema_violations(body) == []
        if len(seen) == 1:
            return httpx.Response(200, json={"result": "a bare string result"})
        return httpx.Response(200, text="<html>nope</html>", headers={"content-type": "text/html"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = WorkersAI(
        account_id="a", api_token="tok-0123456789", base_url="http://mock", http_client=client
    )
    assert (await model.request([Message.user("x")], TOOLS)).text == "a bare string result"
    with pytest.raises(ModelResponseError, match="not valid JSON"):
        await model.request([Message.user("x")], TOOLS)
    assert len(seen) == 2  # an unreadable reply is not retried
    await client.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_whole_agent_run_over_the_wire(server: WireServer, stream: bool) -> None:
    from agentkit.agent import Agent

    def handler(request: Any) -> Reply:
        results = [m for m in request.messages if m["role"] == "tool"]
        if not results:  # first step: one call as text, one structured
            return Reply.answer('[get_weather(city="Paris")]', chunk_chars=4)
        if len(results) == 1:
            return Reply.calls(("get_time", {"tz": "CET"}), shape="legacy")
        return Reply.answer(f"It is {results[0]['content']} at {results[1]['content']}.")

    server.handler = handler
    async with make(server) as model:
        agent = Agent(model, tools=TOOLS)
        if stream:
            events = [e async for e in agent.stream("Weather and time in Paris?")]
            output = events[-1].result.output  # type: ignore[union-attr]
        else:
            output = (await agent.run("Weather and time in Paris?")).output
    assert output == "It is sunny in Paris at noon."
    assert len(server.requests) == 3
    last = server.requests[-1].messages
    assistant_turns = [m for m in last if m["role"] == "assistant"]
    assert [t["tool_calls"][0]["function"]["name"] for t in assistant_turns] == [
        "get_weather",
        "get_time",
    ]
    ids = [t["tool_calls"][0]["id"] for t in assistant_turns]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ids and len(set(ids)) == 2
