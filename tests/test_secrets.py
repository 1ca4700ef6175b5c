"""The API token never shows: not in reprs, errors, transcripts, stream events or logs.

The server below echoes the token back wherever a careless server (or proxy) might: in error
messages, in an HTML page, inside an unreadable stream event, as the whole reply. Everything
agentkit produces from those replies is scanned for it. The logs of the whole suite are
scanned too (``conftest.py``), at DEBUG.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _secrets import SECRET_TOKEN, exception_texts, leaks, record_texts

from agentkit.agent import Agent
from agentkit.errors import AgentKitError, ConfigurationError, ModelConnectionError
from agentkit.messages import Message
from agentkit.models import OpenAICompatible, WorkersAI
from agentkit.models._base_http import HTTPModel
from agentkit.testing_server import Reply, WireServer, schema_violations
from agentkit.tools import tool

ECHO = f"Authorization: Bearer {SECRET_TOKEN}"


@tool
def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: the key
    """
    return key.upper()


def echoing_faults() -> list[Reply]:
    """Replies that put the token in every place a reply can carry text."""
    return [
        Reply.error(401, code=10000, message=f"Authentication error: {ECHO}"),
        Reply.error(400, code=5006, message=f"bad input near {ECHO}"),
        Reply.error(429, code=3036, message=f"quota for token {SECRET_TOKEN} used up"),
        Reply.error(403, code=5018, message=ECHO),
        Reply.error(404, code=5007, message=ECHO),
        Reply.error(413, code=3006, message=ECHO),
        # Plain bodies (stream=False: also to streamed requests, as servers that ignore it do).
        Reply(body=f"<html>proxy error; you sent {ECHO}</html>".encode(), stream=False),
        Reply(body=f"{'x' * 110}{SECRET_TOKEN}".encode(), stream=False),  # cut by a snippet
        Reply(body=f"You sent {ECHO}", stream=False),  # a JSON string, not an object
        Reply(
            body={"result": None, "success": False, "errors": [{"code": 7000, "message": ECHO}]},
            stream=False,
        ),
        Reply(events=[f'{{"response": "{ECHO}']),  # an unreadable event
        Reply(events=[{"error": ECHO}]),
    ]


def openai_faults() -> list[Reply]:
    return [
        Reply.error(401, message=f"Incorrect API key provided: {SECRET_TOKEN}"),
        Reply(body={"error": {"message": ECHO, "type": "invalid_request_error"}}, stream=False),
        Reply(body={"object": "list", "data": [ECHO]}, stream=False),
        Reply(body=f"<html>{ECHO}</html>".encode(), stream=False),
        Reply(events=[{"error": {"message": ECHO}}]),
    ]


def scan_error(exc: BaseException) -> list[str]:
    return leaks(exception_texts(exc))


async def fault_run(model: HTTPModel, stream: bool) -> AgentKitError:
    agent = Agent(model, [lookup])
    with pytest.raises(AgentKitError) as info:
        if stream:
            async for event in agent.stream("go"):
                assert not leaks([repr(event)])
        else:
            await agent.run("go")
    return info.value


def cases(replies: list[Reply]) -> list[Any]:
    """(index, stream) pairs; raw stream events only make sense for streamed requests."""
    return [
        pytest.param(i, stream, id=f"{i}-{'stream' if stream else 'run'}")
        for i, reply in enumerate(replies)
        for stream in (False, True)
        if stream or reply.events is None
    ]


@pytest.mark.parametrize(("index", "stream"), cases(echoing_faults()))
async def test_workers_ai_errors_never_carry_the_token(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], index: int, stream: bool
) -> None:
    # A tool step first, so the failure carries a transcript with a call and a result.
    wire.add(Reply.calls(("lookup", {"key": "a"})), echoing_faults()[index])
    async with workers_ai(wire, max_retries=0) as model:
        error = await fault_run(model, stream)
    assert len(error.messages) == 3
    assert not scan_error(error), scan_error(error)


@pytest.mark.parametrize(("index", "stream"), cases(openai_faults()))
async def test_openai_compatible_errors_never_carry_the_token(index: int, stream: bool) -> None:
    with WireServer([openai_faults()[index]], api_token=SECRET_TOKEN) as server:
        model = OpenAICompatible(
            "llama", base_url=server.openai_base_url, api_key=SECRET_TOKEN, max_retries=0
        )
        async with model:
            error = await fault_run(model, stream)
        assert server.violations == []
    assert not scan_error(error), scan_error(error)


async def test_retried_faults_and_a_whole_streamed_run_show_no_token(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    wire.add(
        Reply.error(429, code=3040, message=ECHO, retry_after=0),
        Reply.drop(),
        Reply.calls(("lookup", {"key": "a"})),
        Reply.error(503, message=ECHO),
        Reply.answer("all done", chunk_chars=2),
    )
    async with workers_ai(wire, max_retries=3) as model:
        events = [e async for e in Agent(model, [lookup]).stream("go")]
    assert len(wire.requests) == 5
    assert not leaks(repr(e) for e in events)
    result = events[-1].result  # type: ignore[union-attr]
    assert not leaks([result.to_dict(), repr(result)])


def test_reprs_show_that_a_token_is_set_but_not_the_token() -> None:
    workers = WorkersAI(account_id="acct", api_token=SECRET_TOKEN)
    openai = OpenAICompatible("llama", base_url="http://127.0.0.1:9/v1", api_key=SECRET_TOKEN)
    objects: list[Any] = [workers, workers.openai(), openai, Agent(workers, [lookup])]
    texts = [repr(o) for o in objects] + [str(o) for o in objects]
    assert not leaks(texts), leaks(texts)
    assert "api_token=set" in repr(workers)


async def test_debug_logs_are_captured_and_scanned(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], secret_scanner: Any
) -> None:
    """The suite-wide scanner sees agentkit's DEBUG records (so its silence means something)."""
    before = secret_scanner.records
    wire.add(Reply.error(401, code=10000, message=ECHO))
    async with workers_ai(wire) as model:
        with pytest.raises(AgentKitError):
            await Agent(model, []).run("go")
    assert secret_scanner.records > before
    assert logging.getLogger("agentkit").isEnabledFor(logging.DEBUG)


def test_the_scanner_finds_a_token_in_any_part_of_a_record() -> None:
    """A leak anywhere in a record is found: message, arguments, or traceback."""
    try:
        raise RuntimeError(f"failed with {SECRET_TOKEN}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    records = [
        logging.LogRecord("agentkit", logging.DEBUG, __file__, 1, f"token {SECRET_TOKEN}", None, None),
        logging.LogRecord("agentkit", logging.DEBUG, __file__, 1, "headers %s", ({"authorization": ECHO},), None),
        logging.LogRecord("agentkit", logging.ERROR, __file__, 1, "request failed", None, exc_info),
    ]  # fmt: skip
    for record in records:
        assert leaks(record_texts(record)), record
    clean = logging.LogRecord("agentkit", logging.DEBUG, __file__, 1, "ok %s", ("x",), None)
    assert not leaks(record_texts(clean))


# --- tokens as they are read, of any length, in every chain and log -------------------------


def chain_texts(exc: BaseException) -> list[str]:
    """str, repr and args of ``exc`` and of every exception linked to it, suppressed or not."""
    texts: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += exception_texts(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_a_token_read_with_a_trailing_newline_is_stripped(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A token read from a file or a secret store ends in a newline: it is sent without it."""
    wire.add("hello")
    options: dict[str, Any] = {"account_id": "acct", "base_url": wire.base_url, "max_retries": 0}
    if source == "argument":
        options["api_token"] = f"  {SECRET_TOKEN}\n"
    else:
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", f"{SECRET_TOKEN}\r\n")
    async with WorkersAI(**options) as model:
        assert (await model.request([Message.user("hi")], [])).text == "hello"
    assert wire.requests[0].authorized
    compat = OpenAICompatible("m", base_url="http://127.0.0.1:9/v1", api_key=f"{SECRET_TOKEN}\n")
    assert compat._transport.secret == SECRET_TOKEN


@pytest.mark.parametrize("token", [f"{SECRET_TOKEN}é", f"{SECRET_TOKEN[:6]}\n{SECRET_TOKEN[6:]}"])
def test_a_token_that_cannot_be_a_header_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    with pytest.raises(ConfigurationError, match="position") as info:
        WorkersAI(account_id="acct", api_token=token)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert not leaks(chain_texts(info.value)) and not leaks(chain_texts(info.value), token)
    assert "api_token" in str(info.value)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_TOKEN"):
        WorkersAI(account_id="acct")
    with pytest.raises(ConfigurationError, match="api_key"):
        OpenAICompatible("m", base_url="http://127.0.0.1:9/v1", api_key=token)


@pytest.mark.parametrize("token", ["k", "k9", "k9Xz7"])
async def test_a_short_token_is_redacted_too(token: str) -> None:
    replies = [
        Reply.error(401, code=10000, message=f"Authentication error: Bearer {token}"),
        Reply(body=f"<html>you sent {token}</html>".encode(), stream=False),
    ]
    with WireServer(replies, api_token=token) as server:
        model = WorkersAI(
            account_id="acct", api_token=token, base_url=server.base_url, max_retries=0
        )
        async with model:
            for _ in replies:
                with pytest.raises(AgentKitError) as info:
                    await model.request([Message.user("hi")], [])
                assert "***" in str(info.value)
                assert not leaks(chain_texts(info.value), f"Bearer {token}")
                assert not leaks(chain_texts(info.value), f"sent {token}")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_transport_error_carrying_the_token_leaves_no_trace_of_it(stream: bool) -> None:
    """Not in the error, nor in its cause or context, however deep, nor in a group member."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert schema_violations(json.loads(request.content)) == []
        try:
            raise OSError(f"socket said {SECRET_TOKEN!r} and {json.dumps(SECRET_TOKEN)}")
        except OSError as inner:
            group = ExceptionGroup("many", [ValueError(f"token={SECRET_TOKEN}")])
            raise httpx.ConnectError(f"failed with {SECRET_TOKEN}") from group if stream else inner

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    model = WorkersAI(
        account_id="acct",
        api_token=SECRET_TOKEN,
        base_url="http://127.0.0.1:9/client/v4",
        http_client=client,
        max_retries=0,
    )
    with pytest.raises(ModelConnectionError) as info:
        if stream:
            [e async for e in model.stream([Message.user("hi")], [])]
        else:
            await model.request([Message.user("hi")], [])
    await client.aclose()
    texts = chain_texts(info.value)
    assert any("ConnectError" in t for t in texts)
    assert not leaks(texts), leaks(texts)


async def test_httpcore_debug_logs_of_an_echoed_token_are_redacted(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    """httpcore logs response headers at DEBUG; a server echoing the token there must not leak it."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.extend(record_texts(record))
            seen.append(self.format(record))

    handler = Collect(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        wire.add(
            Reply(text="hi", headers={"x-echo": ECHO}), Reply(text="hi", headers={"x-echo": ECHO})
        )
        async with workers_ai(wire) as model:
            await model.request([Message.user("hi")], [])
            [e async for e in model.stream([Message.user("hi")], [])]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert any("x-echo" in text and "***" in text for text in seen), seen[:5]
    assert not leaks(seen), leaks(seen)


async def test_a_secret_given_as_a_header_is_redacted_like_the_token() -> None:
    """An AI Gateway token passed in ``headers`` is kept out of errors as the API token is."""
    gateway = "gw-SECRET-fedcba9876543210"
    replies = [
        Reply.error(401, code=10000, message=f"bad gateway token {gateway}"),
        Reply(
            body=f"<html>you sent cf-aig-authorization: Bearer {gateway}</html>".encode(),
            stream=False,
        ),
    ]
    with WireServer(replies, api_token=SECRET_TOKEN) as server:
        model = WorkersAI(
            account_id="acct",
            api_token=SECRET_TOKEN,
            base_url=server.base_url,
            headers={"cf-aig-authorization": f"Bearer {gateway}", "x-trace": "visible-value"},
            max_retries=0,
        )
        async with model:
            for _ in replies:
                with pytest.raises(AgentKitError) as info:
                    await model.request([Message.user("hi")], [])
                assert "***" in str(info.value)
                assert not leaks(chain_texts(info.value), gateway)
        assert server.requests[0].headers["cf-aig-authorization"] == f"Bearer {gateway}"


@pytest.mark.parametrize("kind", ["workers-ai", "openai"])
def test_credentials_in_a_base_url_are_masked_in_reprs_and_errors(kind: str) -> None:
    def make(url: str) -> WorkersAI | OpenAICompatible:
        if kind == "openai":
            return OpenAICompatible("m", base_url=url)
        return WorkersAI(account_id="acct", api_token=SECRET_TOKEN, base_url=url)

    model = make(f"http://proxy-user:{SECRET_TOKEN}@127.0.0.1:8080/v1")
    assert "//***@127.0.0.1:8080/v1" in repr(model)
    assert not leaks([repr(model)])
    with pytest.raises(ConfigurationError, match="port 99999") as info:
        make(f"http://{SECRET_TOKEN}@127.0.0.1:99999/v1")
    assert "//***@127.0.0.1:99999" in str(info.value)
    assert not leaks(exception_texts(info.value))
