from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentkit import (
    AuthenticationError,
    Message,
    ModelResponseError,
    ModelSettings,
    ResponseDone,
    ServerError,
    TextDelta,
    ToolCall,
    ToolResult,
)
from agentkit.models import Model, OpenAICompatible
from agentkit.testing_server import Reply, WireServer
from agentkit.tools import tool

KEY = "sk-local-key-0123456789"


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First number.
        b: Second number.
    """
    return a + b


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer(api_token=KEY) as wire:
        yield wire
        assert wire.violations == []


def make(server: WireServer, **kwargs: Any) -> OpenAICompatible:
    options: dict[str, Any] = {
        "api_key": KEY,
        "backoff_base": 0.001,
        "backoff_max": 0.004,
        "timeout": 5,
    }
    options.update(kwargs)
    return OpenAICompatible("llama3.2:3b", base_url=server.openai_base_url + "/", **options)


async def test_text_and_request_shape(server: WireServer) -> None:
    server.add("4")
    async with make(server, settings=ModelSettings(temperature=0)) as model:
        assert isinstance(model, Model)
        response = await model.request([Message.user("2+2?")], [add])
    assert response.text == "4" and response.finish_reason == "stop"
    (request,) = server.requests
    assert request.path == "/v1/chat/completions" and request.authorized
    assert request.body["model"] == "llama3.2:3b"
    assert request.body["temperature"] == 0 and request.body["stream"] is False
    assert request.body["tools"] == [add.definition("function")]
    assert "stream_options" not in request.body


async def test_tool_calls_and_history_translation(server: WireServer) -> None:
    server.add(Reply.calls(("add", {"a": 2, "b": 3})), "5")
    async with make(server) as model:
        first = await model.request([Message.user("2+3?")], [add])
        call = first.tool_calls[0]
        assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
        history = [
            Message.user("2+3?"),
            Message.assistant("", [call]),
            Message.tool(ToolResult(content="5"), call=call),
        ]
        second = await model.request(history, [add])
    assert second.text == "5"
    sent = server.requests[1].messages
    assert sent[1]["tool_calls"][0] == {
        "id": call.id,
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
    }
    assert sent[1]["content"] == ""  # never null
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "5"}


async def test_text_calls_from_servers_that_do_not_parse_them(server: WireServer) -> None:
    server.add('<|python_tag|>{"name": "add", "parameters": {"a": 1, "b": 2}}', "[add(a=1, b=2)]")
    async with make(server) as model:
        for _ in range(2):
            response = await model.request([Message.user("1+2")], [add])
            assert [(c.name, c.arguments) for c in response.tool_calls] == [
                ("add", {"a": 1, "b": 2})
            ]
            assert response.text is None


async def test_streaming_deltas_tool_fragments_and_usage(server: WireServer) -> None:
    server.add(
        Reply.answer("The answer is five.", chunk_chars=3, write_size=5),
        Reply.calls(
            ("add", {"a": 20, "b": 30}),
            ToolCall(id="dup", name="add", arguments={"a": 1, "b": 1}),
            chunk_chars=3,
        ),
    )
    async with make(server) as model:
        text_events = [e async for e in model.stream([Message.user("x")], [add])]
        call_events = [e async for e in model.stream([Message.user("x")], [add])]
    done = text_events[-1]
    assert isinstance(done, ResponseDone)
    assert (
        "".join(e.text for e in text_events if isinstance(e, TextDelta))
        == done.response.text
        == "The answer is five."
    )
    assert done.response.usage.total_tokens > 0  # from the late usage chunk
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    calls_done = call_events[-1]
    assert isinstance(calls_done, ResponseDone)
    assert [c.arguments for c in calls_done.response.tool_calls] == [
        {"a": 20, "b": 30},
        {"a": 1, "b": 1},
    ]
    assert calls_done.response.finish_reason == "tool_calls"


async def test_stream_usage_can_be_turned_off(server: WireServer) -> None:
    server.add("ok")
    async with make(server, stream_usage=False) as model:
        [e async for e in model.stream([Message.user("x")], [])]
    assert "stream_options" not in server.requests[0].body


async def test_wrong_key_is_an_authentication_error_naming_api_key(server: WireServer) -> None:
    async with make(server, api_key="sk-wrong-key-000000") as model:
        with pytest.raises(AuthenticationError, match="api_key") as info:
            await model.request([Message.user("x")], [])
    assert "sk-wrong-key-000000" not in str(info.value)
    assert KEY not in repr(model) and "sk-wrong" not in repr(model)
    assert len(server.requests) == 1


async def test_no_key_sends_no_authorization() -> None:
    with WireServer(["hello"]) as wire:
        async with OpenAICompatible("m", base_url=wire.openai_base_url) as model:
            assert (await model.request([Message.user("x")], [])).text == "hello"
        assert wire.requests[0].authorized and wire.violations == []


async def test_replies_without_choices() -> None:
    bodies = [
        {"error": {"message": "model crashed", "code": 500}},
        {"object": "list", "data": []},
        {"choices": [{"message": None, "finish_reason": "stop"}]},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bodies.pop(0))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = OpenAICompatible("m", base_url="http://mock/v1", http_client=client, max_retries=0)
    with pytest.raises(ServerError, match="model crashed"):
        await model.request([Message.user("x")], [])
    with pytest.raises(ModelResponseError, match="choices"):
        await model.request([Message.user("x")], [])
    with pytest.raises(ModelResponseError, match=r"choices\[0\] has no message, so no answer"):
        await model.request([Message.user("x")], [])  # not an empty answer
    await client.aclose()


async def test_an_error_event_inside_a_stream(server: WireServer) -> None:
    server.add(
        Reply(events=[{"error": {"message": "overloaded", "type": "server_error"}}], done=False)
    )
    async with make(server, max_retries=0) as model:
        with pytest.raises(ServerError, match="overloaded"):
            [e async for e in model.stream([Message.user("x")], [])]
