"""Each fault the server can inject, and what the client does about it (both wire formats)."""

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentkit import (
    AuthenticationError,
    BadRequestError,
    Message,
    ModelConnectionError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ResponseDone,
    ServerError,
    StreamTruncatedError,
    TextDelta,
)
from agentkit.models import OpenAICompatible, RateLimit, WorkersAI
from agentkit.models._base_http import HTTPModel
from agentkit.models._errors_map import error_from_response, parse_retry_after
from agentkit.testing_server import Reply, WireServer

HI = [Message.user("hi")]


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire
        assert wire.violations == []


@pytest.fixture(params=["workers-ai", "openai"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(server: WireServer, api: str, **kwargs: Any) -> HTTPModel:
    options: dict[str, Any] = {
        "backoff_base": 0.001,
        "backoff_max": 0.004,
        "max_retries": 2,
        "timeout": 5,
    }
    options.update(kwargs)
    if api == "openai":
        return OpenAICompatible("llama3.2", base_url=server.openai_base_url, **options)
    return WorkersAI(
        account_id="acct", api_token="tok-0123456789", base_url=server.base_url, **options
    )


@pytest.mark.parametrize(
    "fault",
    [
        Reply.error(429, code=3040, message="Capacity temporarily exceeded", retry_after=0),
        Reply.error(429, retry_after_ms=1),
        Reply.error(429),
        Reply.error(500),
        Reply.error(503, code=3043),
        Reply.error(502),
        Reply.error(408, code=3007, message="Request timeout"),
        Reply.error(409),
        Reply.drop(),
    ],
    ids=lambda r: f"{r.status}-{r.fault}-{r.retry_after}-{r.retry_after_ms}",
)
async def test_transient_faults_are_retried_and_then_succeed(
    server: WireServer, api: str, fault: Reply
) -> None:
    server.add(fault, "recovered")
    async with make(server, api) as model:
        response = await model.request(HI, [])
    assert response.text == "recovered"
    assert len(server.requests) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_retries_stop_after_the_budget(server: WireServer, api: str, stream: bool) -> None:
    server.add(*[Reply.error(503, code=3043, message="Service busy")] * 3, "never reached")
    async with make(server, api, max_retries=2) as model:
        with pytest.raises(ServerError) as info:
            if stream:
                [e async for e in model.stream(HI, [])]
            else:
                await model.request(HI, [])
    assert len(server.requests) == 3
    assert info.value.status == 503
    assert "gave up after 3 attempts" in str(info.value) and "Service busy" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (Reply.error(400, code=5006, message="oneOf at '/' not met"), BadRequestError, "oneOf"),
        (
            Reply.error(401, code=10000, message="Authentication error"),
            AuthenticationError,
            "Authentication",
        ),
        (Reply.error(403, code=5018, message="Forbidden"), PermissionDeniedError, "permission"),
        (Reply.error(404, code=5007, message="No such model"), NotFoundError, "model name"),
        (Reply.error(413, code=3006, message="Request too large"), RequestTooLargeError, "shorten"),
        (
            Reply.error(429, code=3036, message="daily free allocation exceeded", retry_after=0),
            QuotaExceededError,
            "00:00 UTC",
        ),
        (
            Reply.error(429, code=4006, message="neurons used up"),
            QuotaExceededError,
            "Workers Paid",
        ),
    ],
)
async def test_errors_that_are_never_retried(
    server: WireServer, api: str, reply: Reply, error: type[ModelHTTPError], words: str
) -> None:
    server.add(reply, "not reached")
    async with make(server, api, max_retries=3) as model:
        with pytest.raises(error) as info:
            await model.request(HI, [])
    assert len(server.requests) == 1
    assert info.value.status == reply.status
    assert str(reply.error_code) in str(info.value)
    if api == "workers-ai":
        assert words in str(info.value)
        assert f"Cloudflare error {reply.error_code}" in str(info.value)


async def test_quota_is_a_rate_limit_error_but_not_retried(server: WireServer) -> None:
    server.add(Reply.error(429, code=3036, retry_after=0))
    async with make(server, "workers-ai") as model:
        with pytest.raises(RateLimitError) as info:
            await model.request(HI, [])
    assert isinstance(info.value, QuotaExceededError) and info.value.code == 3036


async def test_persistent_drop_ends_in_connection_error(server: WireServer, api: str) -> None:
    server.add(Reply.drop(), Reply.drop(), Reply.drop())
    async with make(server, api, max_retries=2) as model:
        with pytest.raises(ModelConnectionError, match="gave up after 3 attempts"):
            await model.request(HI, [])
    assert len(server.requests) == 3


async def test_a_stall_past_the_timeout_is_retried(server: WireServer, api: str) -> None:
    server.add(Reply.stalled(2.0), "fast")
    async with make(server, api, timeout=0.2) as model:
        assert (await model.request(HI, [])).text == "fast"
    assert len(server.requests) == 2


async def test_stalls_until_the_budget_runs_out(server: WireServer) -> None:
    server.add(Reply.stalled(2.0), Reply.stalled(2.0))
    async with make(server, "workers-ai", timeout=0.2, max_retries=1) as model:
        with pytest.raises(ModelTimeoutError, match="timeout"):
            await model.request(HI, [])
    assert len(server.requests) == 2


async def test_slow_but_in_time_answers_are_not_retried(server: WireServer, api: str) -> None:
    server.add(Reply.answer("slow", delay=0.05))
    async with make(server, api, timeout=3) as model:
        assert (await model.request(HI, [])).text == "slow"
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "reply", [Reply.invalid_json(), Reply.wrong_content_type()], ids=["json", "ctype"]
)
async def test_unreadable_replies_raise_response_error_without_retry(
    server: WireServer, api: str, reply: Reply, stream: bool
) -> None:
    server.add(reply, "not reached")
    async with make(server, api) as model:
        with pytest.raises(ModelResponseError):
            if stream:
                [e async for e in model.stream(HI, [])]
            else:
                await model.request(HI, [])
    assert len(server.requests) == 1


async def test_a_truncated_json_body_is_a_retried_connection_failure(
    server: WireServer, api: str
) -> None:
    server.add(Reply.truncated("cut"), "whole")
    async with make(server, api) as model:
        assert (await model.request(HI, [])).text == "whole"
    assert len(server.requests) == 2


async def test_stream_truncated_before_the_first_event_is_retried(
    server: WireServer, api: str
) -> None:
    # Tool-call fragments only: nothing reaches the caller before the cut, so it is retried.
    calls = Reply.calls(("get_time", {"tz": "UTC"}), fault="truncate", after_events=2)
    server.add(calls, Reply.answer("again"))
    async with make(server, api) as model:
        events = [e async for e in model.stream(HI, [])]
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == "again"
    assert len(server.requests) == 2


@pytest.mark.parametrize("fault", ["truncate", "drop_stream"])
async def test_stream_cut_after_the_first_event_raises(
    server: WireServer, api: str, fault: str
) -> None:
    server.add(
        Reply(text="a long answer in many pieces", chunk_chars=2, fault=fault, after_events=4),
        "not reached",
    )  # type: ignore[arg-type]
    seen: list[str] = []
    async with make(server, api) as model:
        with pytest.raises(StreamTruncatedError, match=r"\[DONE\]"):
            async for event in model.stream(HI, []):
                if isinstance(event, TextDelta):
                    seen.append(event.text)
    assert seen  # the caller got events, so nothing was retried
    assert len(server.requests) == 1


async def test_stream_stalling_mid_way_times_out(server: WireServer) -> None:
    server.add(
        Reply(text="abcdefgh", chunk_chars=2, fault="stall_stream", stall=2.0, after_events=2)
    )
    async with make(server, "workers-ai", timeout=0.2) as model:
        with pytest.raises(ModelTimeoutError, match="stalled"):
            [e async for e in model.stream(HI, [])]
    assert len(server.requests) == 1


async def test_stream_error_status_before_events_is_retried(server: WireServer, api: str) -> None:
    server.add(Reply.error(429, code=3040, retry_after=0), Reply.drop(), "streamed")
    async with make(server, api) as model:
        events = [e async for e in model.stream(HI, [])]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "streamed"
    assert len(server.requests) == 3


def test_retry_after_is_parsed_and_capped() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    err = error_from_response(429, {"retry-after": "3600"}, b"{}", model_name="m")
    assert err.retry_after == 3600.0
    model = WorkersAI(account_id="a", api_token="tok-0123456789")
    for retry in (1, 2, 5):
        # capped like Cloudflare's SDK, plus a jitter of up to half of it and 0.5 s
        assert 60.0 <= model._transport.retry.delay(err, retry) <= 90.5


async def test_retry_after_header_is_honoured(server: WireServer) -> None:
    server.add(Reply.error(429, code=3040, retry_after_ms=1), "ok")
    # A long backoff, so only the server's short retry-after lets this finish quickly.
    async with make(server, "workers-ai", backoff_base=30, backoff_max=30) as model:
        assert (await asyncio.wait_for(model.request(HI, []), timeout=10)).text == "ok"


def test_error_messages_carry_code_text_and_advice() -> None:
    err = error_from_response(
        429,
        {},
        b'{"success": false, "errors": [{"code": 3040, "message": "AiError: 3040: Capacity temporarily exceeded"}]}',
        model_name="@cf/x",
    )
    assert isinstance(err, RateLimitError) and not isinstance(err, QuotaExceededError)
    assert "3040" in str(err) and "Capacity" in str(err) and "rate_limit=" in str(err)
    from_text = error_from_response(
        429, {}, b'{"errors": [{"message": "AiError: 3036: quota"}]}', model_name="m"
    )
    assert isinstance(from_text, QuotaExceededError) and from_text.code == 3036
    html = error_from_response(502, {}, b"<html>Bad gateway</html>", model_name="m")
    assert isinstance(html, ServerError) and "Bad gateway" in html.detail
    openai_style = error_from_response(
        400,
        {},
        b'{"error": {"message": "bad tools", "type": "invalid_request_error"}}',
        model_name="m",
    )
    assert (
        isinstance(openai_style, BadRequestError) and openai_style.code == "invalid_request_error"
    )
    redacted = error_from_response(
        401, {}, b'{"error": "bad key sk-12345678"}', model_name="m", secret="sk-12345678"
    )
    assert "sk-12345678" not in str(redacted) and "***" in str(redacted)


def test_rate_limit_spaces_slots_across_threads() -> None:
    limit = RateLimit(600, per_seconds=60)  # one slot every 0.1 s
    limit._clock = lambda: 1000.0  # a frozen clock: every caller arrives at the same instant
    delays: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            delay = limit.reserve()
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    # 20 callers at once get 20 distinct slots 0.1 s apart.
    assert sorted(round(d, 6) for d in delays) == [round(0.1 * i, 6) for i in range(20)]


async def test_rate_limit_is_shared_by_concurrent_requests(server: WireServer) -> None:
    limit = RateLimit(1000, per_seconds=1)
    limit._clock = lambda: 1000.0
    server.default = "ok"
    async with make(server, "workers-ai", rate_limit=limit) as model:
        results = await asyncio.gather(*(model.request(HI, []) for _ in range(20)))
        other = make(server, "openai", rate_limit=limit)  # one limit object for two models
        await other.request(HI, [])
        await other.aclose()
    assert all(r.text == "ok" for r in results)
    assert limit._next == pytest.approx(1000.0 + 21 * 0.001)  # one slot taken per request
    assert len(server.requests) == 21


def test_rate_limit_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rate limit must be positive"):
        WorkersAI(account_id="a", api_token="tok-0123456789", rate_limit=0)
    with pytest.raises(ValueError, match="requests per minute"):
        WorkersAI(account_id="a", api_token="tok-0123456789", rate_limit="fast")  # type: ignore[arg-type]
    model = WorkersAI(account_id="a", api_token="tok-0123456789", rate_limit=300)
    assert repr(model._transport.rate_limit) == "RateLimit(requests=300, per_seconds=60.0)"


async def test_connection_refused_is_a_connection_error() -> None:
    model = WorkersAI(
        account_id="a",
        api_token="tok-0123456789",
        base_url="http://127.0.0.1:9",
        max_retries=1,
        backoff_base=0.001,
        timeout=2,
    )
    async with model:
        with pytest.raises(ModelConnectionError, match=r"127\.0\.0\.1"):
            await model.request(HI, [])


async def test_mock_transport_read_timeout_maps_to_timeout_error() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = WorkersAI(
        account_id="a",
        api_token="tok-0123456789",
        http_client=client,
        max_retries=2,
        backoff_base=0.001,
    )
    with pytest.raises(ModelTimeoutError):
        await model.request(HI, [])
    assert calls == 3
    await client.aclose()


def test_a_token_cut_by_the_300_byte_limit_of_a_plain_error_body_leaves_no_prefix() -> None:
    """The token is removed from the bytes before the body is cut for the message."""
    token = "SECRETTOKEN-0123456789abcdef"
    for offset in (285, 290, 295, 299):
        body = b"x" * offset + token.encode() + b" and more text"
        error = error_from_response(502, {}, body, model_name="m", secret=token)
        for text in (str(error), error.detail, repr(error)):
            assert "SECRETTOK" not in text and token[:5] not in text, (offset, text[-40:])


def test_the_default_retry_settings() -> None:
    """Three retries after the first attempt; backoff from 0.5 s, doubling, at most 8 s."""
    for model in (
        WorkersAI(account_id="a", api_token="tok-0123456789"),
        OpenAICompatible("m", base_url="http://127.0.0.1:9/v1"),
    ):
        policy = model._transport.retry
        assert (policy.max_retries, policy.backoff_base, policy.backoff_max) == (3, 0.5, 8.0)
        assert policy.retry_after_max == 60.0
    err = ServerError("m: HTTP 503", status=503)
    highest = [policy.delay(err, n) for n in range(1, 7) for _ in range(50)]
    tops = [max(highest[i * 50 : (i + 1) * 50]) for i in range(6)]
    lows = [min(highest[i * 50 : (i + 1) * 50]) for i in range(6)]
    for top, low, step in zip(tops, lows, [0.5, 1, 2, 4, 8, 8], strict=True):
        assert step / 2 <= low <= top <= step  # half of the step, plus jitter up to the other half


async def test_a_failing_server_is_tried_four_times_with_the_default_policy(
    server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkit.models import _retry

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(_retry, "_sleep", record)
    server.default = Reply.error(503, message="down")
    model = WorkersAI(account_id="a", api_token="tok-0123456789", base_url=server.base_url)
    async with model:
        with pytest.raises(ServerError, match="gave up after 4 attempts"):
            await model.request(HI, [])
    assert len(server.requests) == 4
    assert len(waits) == 3
    for wait, step in zip(waits, [0.5, 1.0, 2.0], strict=True):
        assert step / 2 <= wait <= step
