"""Servers that misbehave on purpose: nesting bombs, endless lines, huge or dripping bodies,
bare CR line endings, bad URLs, herds of retries, and a pool that queues behind a stall.

Each reply comes from a real local server (:class:`_rawserver.RawServer` for bytes no
well-behaved server writes, the WireServer otherwise); every Workers AI body sent is checked
against the input schema.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _rawserver import RawRequest, RawServer, chunk, head
from _secrets import SECRET_TOKEN

from agentkit import RateLimit
from agentkit.errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelResponseError,
    ModelTimeoutError,
    RateLimitError,
)
from agentkit.messages import Message, ResponseDone, TextDelta
from agentkit.models import OpenAICompatible, WorkersAI
from agentkit.models._retry import RetryPolicy
from agentkit.testing_server import Reply, WireServer, schema_violations

HI = [Message.user("hi")]
NESTED = b"[" * 100_000 + b"]" * 100_000


def workers(server: RawServer | WireServer, **options: Any) -> WorkersAI:
    settings: dict[str, Any] = {
        "account_id": "acct",
        "api_token": SECRET_TOKEN,
        "base_url": server.base_url,
        "max_retries": 0,
        "timeout": 5.0,
    }
    settings.update(options)
    return WorkersAI(**settings)


@pytest.fixture
def raw() -> Iterator[RawServer]:
    """A raw server; set ``raw.handler`` in the test. Bodies must validate at the end."""

    async def unset(request: RawRequest, writer: Any) -> bool:
        raise AssertionError("no handler")

    with RawServer(unset) as server:
        yield server
        assert server.violations == [], server.violations


async def collect(model: WorkersAI) -> tuple[str, ResponseDone]:
    events = [e async for e in model.stream(HI, [])]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    last = events[-1]
    assert isinstance(last, ResponseDone)
    return text, last


# --- untrusted JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_deeply_nested_json_is_a_typed_error(wire: WireServer, stream: bool) -> None:
    if stream:
        wire.add(Reply(events=[NESTED.decode()]))
    else:
        wire.add(Reply(body=NESTED, stream=False))
    async with workers(wire) as model:
        with pytest.raises(ModelResponseError, match="too deeply"):
            if stream:
                await collect(model)
            else:
                await model.request(HI, [])


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "result": None},
        {"success": True, "errors": [], "messages": []},
        {"success": True, "result": {"choices": []}},
        {"success": True, "result": {"choices": [{"message": None}]}},
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_without_a_result_is_an_error_not_an_empty_answer(
    wire: WireServer, body: dict[str, Any], stream: bool
) -> None:
    wire.add(Reply(body=body, stream=False))
    async with workers(wire) as model:
        with pytest.raises(ModelResponseError, match="result"):
            if stream:
                await collect(model)
            else:
                await model.request(HI, [])


# --- streams -----------------------------------------------------------------------------------


async def test_one_endless_stream_line_stops_at_the_event_cap(raw: RawServer) -> None:
    sent = 0

    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(head(200, "text/event-stream", transfer_encoding="chunked"))
        writer.write(chunk(b'data: {"response": "'))
        piece = b"x" * 65536
        while sent < 64 * 1024 * 1024:  # far past the cap; the client hangs up first
            writer.write(chunk(piece))
            sent += len(piece)
            await writer.drain()
        return False

    raw.handler = endless
    async with workers(raw, max_event_bytes=1024 * 1024) as model:
        with pytest.raises(ModelResponseError, match="max_event_bytes"):
            await collect(model)
    assert sent < 16 * 1024 * 1024


async def test_a_stream_with_bare_cr_line_endings_ends_at_done_on_a_kept_alive_connection(
    raw: RawServer,
) -> None:
    async def cr_only(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, "text/event-stream", transfer_encoding="chunked"))
        writer.write(chunk(b'data: {"response": "Hel"}\r\r'))
        writer.write(chunk(b'data: {"response": "lo"}\r\rdata: [DONE]\r\r'))
        await writer.drain()
        await asyncio.sleep(30)  # the connection stays open, the chunked body unfinished
        return False

    raw.handler = cr_only
    async with workers(raw, timeout=3.0) as model:
        text, done = await collect(model)
    assert text == "Hello" and done.response.text == "Hello"


async def test_a_last_event_without_its_blank_line_is_read_over_http(raw: RawServer) -> None:
    async def unterminated(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        body = b'data: {"response": "one"}\n\ndata: {"response": " two"}\n\ndata: [DONE]'
        writer.write(head(200, "text/event-stream", content_length=str(len(body))) + body)
        await writer.drain()
        return False

    raw.handler = unterminated
    async with workers(raw) as model:
        text, done = await collect(model)
    assert text == "one two" and done.response.finish_reason == "stop"


# --- body size ---------------------------------------------------------------------------------


async def test_a_body_past_the_cap_fails_while_it_is_still_arriving(raw: RawServer) -> None:
    """The server sends more than the cap and then stalls: the cap fires, not the timeout."""

    async def huge(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, transfer_encoding="chunked"))
        writer.write(chunk(b'{"result": {"response": "' + b"x" * (2 * 1024 * 1024)))
        await writer.drain()
        await asyncio.sleep(30)
        return False

    raw.handler = huge
    async with workers(raw, max_response_bytes=1024 * 1024, timeout=20.0) as model:
        with pytest.raises(ModelResponseError, match="max_response_bytes"):
            await model.request(HI, [])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_gzip_bomb_stops_at_the_default_cap(raw: RawServer, stream: bool) -> None:
    inflated = 40 * 1024 * 1024  # more than the 32 MiB default
    if stream:
        event = b'data: {"response": "' + b"x" * 4096 + b'"}\n\n'
        plain = event * (inflated // len(event))
        kind = "text/event-stream"
    else:
        plain = b'{"result": {"response": "' + b" " * inflated + b'"}}'
        kind = "application/json"
    bomb = gzip.compress(plain, compresslevel=9)
    assert len(bomb) < inflated // 100

    async def send(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, kind, content_encoding="gzip", content_length=str(len(bomb))) + bomb)
        await writer.drain()
        return True

    raw.handler = send
    async with workers(raw) as model:
        with pytest.raises(ModelResponseError, match="max_response_bytes"):
            if stream:
                await collect(model)
            else:
                await model.request(HI, [])


async def test_a_gzip_reply_under_the_cap_is_read(raw: RawServer) -> None:
    body = gzip.compress(json.dumps({"success": True, "result": {"response": "zipped"}}).encode())

    async def send(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, content_encoding="gzip", content_length=str(len(body))) + body)
        await writer.drain()
        return True

    raw.handler = send
    async with workers(raw) as model:
        assert (await model.request(HI, [])).text == "zipped"
    assert raw.requests[0].headers["accept-encoding"] == "gzip, deflate"


# --- the deadline ------------------------------------------------------------------------------


def dripping(keep_alive_comments: bool) -> Any:
    """A server that sends one byte (or one keep-alive comment) every 0.1 s, for about 8 s."""

    async def drip(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if keep_alive_comments:
            writer.write(head(200, "text/event-stream", transfer_encoding="chunked"))
            writer.write(chunk(b'data: {"response": "x"}\n\n'))
            pieces = [chunk(b": keep-alive\n")] * 80
        else:
            body = b'{"result": {"response": "' + b"x" * 50 + b'"}}'
            writer.write(head(200, content_length=str(len(body))))
            pieces = [bytes([b]) for b in body]
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.1)
        if keep_alive_comments:
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
        return False

    return drip


@pytest.mark.parametrize("stream", [False, True])
async def test_a_dripping_server_cannot_hold_a_call_past_its_deadline(
    raw: RawServer, stream: bool
) -> None:
    raw.handler = dripping(keep_alive_comments=stream)
    async with workers(raw, timeout=1.0, deadline=1.0, max_retries=3) as model:
        with pytest.raises(ModelTimeoutError, match="deadline") as info:
            if stream:
                await collect(model)
            else:
                await model.request(HI, [])
    assert "1 s" in str(info.value)


async def test_the_default_deadline_is_five_times_the_timeout(raw: RawServer) -> None:
    raw.handler = dripping(keep_alive_comments=False)
    model = workers(raw, timeout=0.6)  # (0.6 s per read: far more than the 0.1 s between bytes)
    assert model._transport.deadline == pytest.approx(3.0)
    assert WorkersAI(account_id="a", api_token=SECRET_TOKEN)._transport.deadline == 600.0
    assert workers(raw, timeout=None)._transport.deadline is None
    assert workers(raw, deadline=math.inf)._transport.deadline is None
    async with model:
        with pytest.raises(ModelTimeoutError, match="deadline of 3 s"):
            await model.request(HI, [])


async def test_no_retry_starts_when_its_wait_would_pass_the_deadline(wire: WireServer) -> None:
    wire.add(Reply.error(429, code=3040, retry_after=30), "not reached")
    async with workers(wire, deadline=5.0, max_retries=3) as model:
        with pytest.raises(RateLimitError, match="would pass the deadline"):
            await model.request(HI, [])
    assert len(wire.requests) == 1


@pytest.mark.parametrize("deadline", [0, -1, "soon", True])
def test_a_deadline_must_be_positive(deadline: Any) -> None:
    with pytest.raises(ConfigurationError, match="deadline"):
        WorkersAI(account_id="a", api_token=SECRET_TOKEN, deadline=deadline)


# --- URLs and failures below HTTP ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/client/v4",
        "ftp://example.com/v4",
        "localhost:8080",
        "http://",
        "http://exa mple.com/v1",
        "http://[::1/v1",
        "",
    ],
)
def test_base_url_is_validated_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        WorkersAI(account_id="a", api_token=SECRET_TOKEN, base_url=url or " ")
    with pytest.raises(ConfigurationError, match="base_url"):
        OpenAICompatible("m", base_url=url or " ")


def test_a_base_url_from_the_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", "http://127.0.0.1:70000")
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_BASE_URL"):
        WorkersAI(account_id="a", api_token=SECRET_TOKEN)


@pytest.mark.parametrize("stream", [False, True])
async def test_any_failure_below_http_becomes_a_typed_error(stream: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert schema_violations(json.loads(request.content)) == []
        raise ExceptionGroup("connect", [OverflowError("port must be 0-65535.")])

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = WorkersAI(
        account_id="a", api_token=SECRET_TOKEN, base_url="http://mock", http_client=client
    )
    model._transport.retry.max_retries = 0
    with pytest.raises(ModelConnectionError, match="ExceptionGroup"):
        if stream:
            [e async for e in model.stream(HI, [])]
        else:
            await model.request(HI, [])
    await client.aclose()


# --- retry-after herds -------------------------------------------------------------------------


def test_retry_after_waits_are_spread_by_jitter() -> None:
    """200 requests told "retry-after: 1" do not all come back in the same 100 ms."""
    policy = RetryPolicy()
    error = RateLimitError("busy", status=429, retry_after=1.0)
    waits = [policy.delay(error, 1) for _ in range(200)]
    assert all(1.0 <= w <= 1.0 + 0.5 + 0.5 for w in waits)
    buckets: dict[int, int] = {}
    for wait in waits:
        buckets[int(wait * 10)] = buckets.get(int(wait * 10), 0) + 1
    assert max(buckets.values()) < 60, buckets  # (uniform over 10 buckets: about 20 each)


# --- the rate limit holds where requests are sent ------------------------------------------------


@pytest.mark.parametrize("client", ["owned", "caller's"])
async def test_the_rate_limit_holds_when_requests_are_sent_behind_a_stalled_pool(
    raw: RawServer, client: str
) -> None:
    """20/s, 5 connections, and a server that stalls the first 5 requests for two seconds: the
    requests queued for a connection meanwhile must not reach the server in a burst."""
    seen = 0

    async def stall_first(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        nonlocal seen
        seen += 1
        if seen <= 5:
            await asyncio.sleep(2.0)
        body = json.dumps({"success": True, "result": {"response": "ok"}}).encode()
        writer.write(head(200, content_length=str(len(body))) + body)
        await writer.drain()
        return True

    raw.handler = stall_first
    limit = RateLimit(20, per_seconds=1.0)
    limits = httpx.Limits(max_connections=5, max_keepalive_connections=5)
    http = httpx.AsyncClient(limits=limits) if client != "owned" else None
    model = workers(raw, rate_limit=limit, limits=limits, http_client=http, timeout=10.0)
    async with model:
        answers = await asyncio.gather(*(model.request(HI, []) for _ in range(40)))
    if http is not None:
        await http.aclose()
    assert [a.text for a in answers] == ["ok"] * 40
    arrivals = sorted(raw.arrivals)
    assert len(arrivals) == 40
    # Requests in any window of one second, as the server counted them: a closed window of
    # evenly spaced sends holds at most 21; a few more allow for a machine so busy that sends
    # bunch up (up to 0.2 s late).
    most = max(sum(1 for t in arrivals[i:] if t - start <= 1.0) for i, start in enumerate(arrivals))
    assert most <= 25, most  # (35 when the slot was taken before waiting for a connection)


# --- newer models and finish reasons --------------------------------------------------------------


COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "It is sunny.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}


def weather(city: str) -> str:
    """The weather.

    Args:
        city: a city
    """
    return "sunny"


async def test_a_chat_completion_inside_result_is_read_on_both_paths(wire: WireServer) -> None:
    from agentkit.tools import tool

    tools = [tool(weather)]
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
        for delta in ({"content": "It is "}, {"content": "sunny."})
    ]
    wire.add(
        Reply(body={"success": True, "result": COMPLETION}, stream=False),
        Reply(events=chunks),
    )
    async with workers(wire) as model:
        whole = await model.request(HI, tools)
        events = [e async for e in model.stream(HI, tools)]
    assert whole.text == "It is sunny."
    assert [(c.name, c.arguments) for c in whole.tool_calls] == [("weather", {"city": "Paris"})]
    assert whole.usage.total_tokens == 17
    last = events[-1]
    assert isinstance(last, ResponseDone) and last.response.text == "It is sunny."


@pytest.mark.parametrize("stream", [False, True])
async def test_model_length_is_reported_as_length(wire: WireServer, stream: bool) -> None:
    if stream:
        wire.add(
            Reply(events=[{"response": "cut"}, {"response": "", "finish_reason": "model_length"}])
        )
    else:
        result = {
            **COMPLETION,
            "choices": [{"message": {"content": "cut"}, "finish_reason": "model_length"}],
        }
        wire.add(Reply(body={"success": True, "result": result}, stream=False))
    async with workers(wire) as model:
        if stream:
            response = (await collect(model))[1].response
        else:
            response = await model.request(HI, [])
    assert response.finish_reason == "length"


# --- settings per backend, and text-only messages --------------------------------------------------


async def test_negative_penalties_go_to_openai_compatible_servers_not_to_workers_ai() -> None:
    from agentkit.settings import ModelSettings

    negative = ModelSettings(frequency_penalty=-1.5, presence_penalty=-0.5)
    with WireServer(api_token=SECRET_TOKEN) as server:
        server.add("ok")
        compat = OpenAICompatible(
            "m", base_url=server.openai_base_url, api_key=SECRET_TOKEN, settings=negative
        )
        async with compat:
            assert (await compat.request(HI, [])).text == "ok"
        assert server.requests[0].body["frequency_penalty"] == -1.5
    with pytest.raises(ConfigurationError, match=r"frequency_penalty=-1\.5.*0 to 2"):
        WorkersAI(account_id="a", api_token=SECRET_TOKEN, settings=negative)
    model = WorkersAI(account_id="a", api_token=SECRET_TOKEN, base_url="http://127.0.0.1:9/x")
    with pytest.raises(ConfigurationError, match=r"presence_penalty=-0\.5"):
        await model.request(HI, [], ModelSettings(presence_penalty=-0.5))
    with pytest.raises(ConfigurationError, match="frequency_penalty"):
        ModelSettings(frequency_penalty=-2.5)


def test_a_message_with_an_image_is_refused_as_text_only() -> None:
    with pytest.raises(ValueError, match="text only"):
        Message(role="user", content="what is this?", image=[1, 2, 3])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="text only"):
        Message.model_validate({"role": "user", "content": "x", "image": "aGk="})


@pytest.mark.parametrize("encoding", ["gzip", "deflate-zlib", "deflate-raw", "gzip-two-members"])
async def test_every_encoding_agentkit_asks_for_is_inflated_in_bounded_pieces(
    encoding: str,
) -> None:
    import zlib

    from agentkit.models._body import BodyTooLargeError, read_body

    plain = b"abc" * 100_000
    if encoding == "gzip":
        data, header = gzip.compress(plain), "gzip"
    elif encoding == "gzip-two-members":
        data, header = gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]), "gzip"
    elif encoding == "deflate-zlib":
        data, header = zlib.compress(plain), "deflate"
    else:
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data, header = raw.compress(plain) + raw.flush(), "deflate"

    def response() -> httpx.Response:
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        return httpx.Response(
            200, headers={"content-encoding": header}, stream=httpx.ByteStream(b"".join(pieces))
        )

    assert await read_body(response(), len(plain), "m") == plain
    with pytest.raises(BodyTooLargeError, match="max_response_bytes"):
        await read_body(response(), len(plain) - 1, "m")
    cut = await read_body(response(), 1000, "m", cut=True)  # (enough to report an error reply)
    assert plain.startswith(cut) and 0 < len(cut) <= 1000
