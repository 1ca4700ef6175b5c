"""OpenTelemetry traces: the span tree, GenAI attributes, retries, failures, streams, secrets.

Spans are collected with the SDK's in-memory exporter; HTTP runs go to a real local
WireServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
from _secrets import SECRET_TOKEN, leaks
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_secrets import echoing_faults, lookup, openai_faults

import agentkit
from agentkit import Agent, ModelResponse, ModelSettings, TextDelta, ToolCall, Usage, tool
from agentkit.errors import AgentKitError, ServerError
from agentkit.models import OpenAICompatible, WorkersAI
from agentkit.testing import Reply, ScriptedModel, WireServer
from agentkit.tracing import Instrumentation

Spans = Callable[[], list[ReadableSpan]]


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider, exporter
    tracer_provider.shutdown()


@pytest.fixture
def traced(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> Callable[..., Instrumentation]:
    def make(include_content: bool = False) -> Instrumentation:
        return Instrumentation(provider[0], include_content=include_content)

    return make


@pytest.fixture
def spans(provider: tuple[TracerProvider, InMemorySpanExporter]) -> Spans:
    return lambda: list(provider[1].get_finished_spans())


@pytest.fixture
def no_global_tracing() -> Iterator[None]:
    yield
    agentkit.uninstrument()


def named(found: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return sorted((s for s in found if s.name.startswith(prefix)), key=lambda s: s.start_time or 0)


def only(found: Sequence[ReadableSpan], prefix: str) -> ReadableSpan:
    (span,) = named(found, prefix)
    return span


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)


# --- the span tree ---------------------------------------------------------------------------


def parallel_tools() -> tuple[list[Any], list[str]]:
    """Two tools that each wait until both have started (so they provably overlap)."""
    started: list[str] = []
    both = asyncio.Event()

    async def meet(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return f"{name} ok"

    @tool
    async def stock(item: str) -> str:
        """Stock of an item.

        Args:
            item: the item
        """
        return await meet("stock")

    @tool
    async def price(item: str) -> str:
        """Price of an item.

        Args:
            item: the item
        """
        return await meet("price")

    return [stock, price], started


async def test_span_tree_of_a_multi_step_run_with_parallel_tools(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    tools, started = parallel_tools()
    model = ScriptedModel(
        [
            [
                ToolCall(id="c1", name="stock", arguments={"item": "pen"}),
                ToolCall(id="c2", name="price", arguments={"item": "pen"}),
            ],
            ToolCall(id="c3", name="stock", arguments={"item": "ink"}),
            "4 pens at 2 each; no ink",
        ]
    )
    agent = Agent(
        model,
        tools,
        name="shop",
        description="Answers stock questions",
        settings=ModelSettings(temperature=0.2, top_p=0.9, max_tokens=300, seed=7),
        instrument=traced(),
    )
    result = await agent.run("pens and ink?")
    assert sorted(started[:2]) == ["price", "stock"]
    found = spans()
    assert len(found) == 1 + 3 + 3

    root = only(found, "invoke_agent")
    assert root.name == "invoke_agent shop" and root.kind is SpanKind.INTERNAL
    assert root.parent is None and root.status.status_code is StatusCode.UNSET
    assert attrs(root) | {} == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "agentkit.scripted",
        "gen_ai.request.model": "scripted",
        "gen_ai.conversation.id": result.run_id,
        "gen_ai.agent.name": "shop",
        "gen_ai.agent.description": "Answers stock questions",
        "agentkit.run.id": result.run_id,
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
        "agentkit.run.steps": 3,
    }

    chats = named(found, "chat ")
    assert [c.name for c in chats] == ["chat scripted"] * 3
    for chat, finish in zip(chats, ["tool_calls", "tool_calls", "stop"], strict=True):
        assert is_child(chat, root) and chat.kind is SpanKind.CLIENT
        a = attrs(chat)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "agentkit.scripted"
        assert a["gen_ai.request.model"] == "scripted"
        assert a["gen_ai.conversation.id"] == result.run_id
        assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.top_p"] == 0.9
        assert a["gen_ai.request.max_tokens"] == 300 and a["gen_ai.request.seed"] == 7
        assert a["gen_ai.request.stream"] is False
        assert a["gen_ai.response.finish_reasons"] == (finish,)
        assert a["gen_ai.usage.input_tokens"] == 0 and a["gen_ai.usage.output_tokens"] == 0
        assert a["agentkit.request.retries"] == 0
        assert not set(CONTENT_KEYS) & set(a)

    tools_spans = named(found, "execute_tool")
    assert [t.name for t in tools_spans[:2]] in (
        ["execute_tool stock", "execute_tool price"],
        ["execute_tool price", "execute_tool stock"],
    )
    by_id = {attrs(t)["gen_ai.tool.call.id"]: t for t in tools_spans}
    assert set(by_id) == {"c1", "c2", "c3"}
    for call_id, name in [("c1", "stock"), ("c2", "price"), ("c3", "stock")]:
        span = by_id[call_id]
        assert is_child(span, root) and span.kind is SpanKind.INTERNAL
        assert attrs(span) == {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }
    # The two calls of the first step overlap; each step's tools run between its requests.
    first, second = by_id["c1"], by_id["c2"]
    assert max(first.start_time, second.start_time) < min(first.end_time, second.end_time)  # type: ignore[operator,type-var]
    assert chats[0].end_time <= first.start_time and second.end_time <= chats[1].start_time  # type: ignore[operator]


async def test_each_chat_span_has_the_settings_of_its_request(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    used = Usage(prompt_tokens=250, completion_tokens=50, total_tokens=300)
    step = ModelResponse(tool_calls=[ToolCall(name="lookup", arguments={"key": "k"})], usage=used)
    model = ScriptedModel([step, "K"])
    agent = Agent(
        model,
        [lookup],
        settings=ModelSettings(max_tokens=800, temperature=0.5),
        max_total_tokens=1000,
        instrument=traced(),
    )
    await agent.run("go")
    first, second = (attrs(c) for c in named(spans(), "chat"))
    # The token budget caps the second request's max_tokens (1000 - 300 used - 300 of prompt).
    assert first["gen_ai.request.max_tokens"] == 800
    assert second["gen_ai.request.max_tokens"] == 400
    assert first["gen_ai.request.temperature"] == second["gen_ai.request.temperature"] == 0.5
    assert model.requests[1].settings is not None
    assert model.requests[1].settings.max_tokens == 400


async def test_contents_only_with_include_content(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    model = ScriptedModel([ToolCall(id="c1", name="lookup", arguments={"key": "ab"}), "AB"])
    await Agent(model, [lookup], system_prompt="Be brief.", instrument=traced(True)).run("key?")
    found = spans()
    first, last = named(found, "chat")
    sent = json.loads(attrs(first)["gen_ai.input.messages"])
    assert sent == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "key?"}]},
    ]
    assert json.loads(attrs(first)["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"key": "ab"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert json.loads(attrs(last)["gen_ai.input.messages"])[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "c1", "result": "AB"}],
    }
    tool_span = only(found, "execute_tool")
    assert json.loads(attrs(tool_span)["gen_ai.tool.call.arguments"]) == {"key": "ab"}
    assert attrs(tool_span)["gen_ai.tool.call.result"] == "AB"


async def test_a_failed_tool_call_is_marked(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    @tool
    def broken() -> str:
        """Fails."""
        raise RuntimeError("out of order")

    model = ScriptedModel([ToolCall(name="broken"), ToolCall(name="missing"), "sorry"])
    await Agent(model, [broken], instrument=traced()).run("go")
    for span in named(spans(), "execute_tool"):
        assert attrs(span)["error.type"] == "tool_error"
        assert span.status.status_code is StatusCode.ERROR
        assert "out of order" not in (span.status.description or "")  # content stays out


async def test_spans_inside_a_tool_and_a_nested_agent_are_its_children(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    inner = Agent(ScriptedModel(["inner answer"]), name="helper", instrument=traced())
    tracer = trace.get_tracer("test", tracer_provider=traced().tracer_provider)

    @tool
    async def fetch(url: str) -> str:
        """Fetch a page.

        Args:
            url: the page
        """
        with tracer.start_as_current_span("GET"):
            return "page"

    model = ScriptedModel(
        [[ToolCall(name="fetch", arguments={"url": "u"}), ToolCall(name="helper", arguments={"request": "r"})], "ok"]
    )  # fmt: skip
    await Agent(model, [fetch, inner.as_tool()], name="boss", instrument=traced()).run("go")
    found = spans()
    outer = only(found, "invoke_agent boss")
    nested = only(found, "invoke_agent helper")
    assert is_child(only(found, "GET"), only(found, "execute_tool fetch"))
    assert is_child(nested, only(found, "execute_tool helper"))
    assert is_child(only(found, "execute_tool helper"), outer)
    chats = named(found, "chat")
    assert len(chats) == 3
    assert [is_child(c, nested) for c in chats] == [False, True, False]  # one in the nested run
    assert {s.context.trace_id for s in found} == {outer.context.trace_id}


async def test_tool_hooks_run_inside_the_tool_span(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    seen: list[str] = []

    class Mark(agentkit.Hooks):
        def on_tool_start(self, run: agentkit.RunInfo, call: ToolCall) -> None:
            trace.get_current_span().set_attribute("app.marked", call.name)

        def on_tool_end(
            self, run: agentkit.RunInfo, call: ToolCall, result: Any, error: Any
        ) -> None:
            seen.append(getattr(trace.get_current_span(), "name", "?"))

    model = ScriptedModel([ToolCall(name="lookup", arguments={"key": "k"}), "K"])
    await Agent(model, [lookup], hooks=Mark(), instrument=traced()).run("go")
    assert attrs(only(spans(), "execute_tool"))["app.marked"] == "lookup"
    assert seen == ["execute_tool lookup"]


async def test_a_session_names_the_conversation(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    from agentkit.sessions import MemorySession

    session = MemorySession("support-42")
    agent = Agent(ScriptedModel(["one", "two"]), instrument=traced())
    await agent.run("first", session=session)
    await agent.run("second", session=session)
    ids = {attrs(s)["gen_ai.conversation.id"] for s in spans() if not s.name.startswith("exec")}
    assert ids == {"support-42"}
    assert len(named(spans(), "invoke_agent")) == 2


def test_a_synchronous_stream_is_traced(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    model = ScriptedModel([ToolCall(name="lookup", arguments={"key": "k"}), "the key is K"])
    agent = Agent(model, [lookup], instrument=traced())
    events = list(agent.stream_sync("go"))
    assert events
    found = spans()
    root = only(found, "invoke_agent")
    assert len(found) == 4 and all(is_child(s, root) for s in found if s is not root)
    assert all(s.status.status_code is StatusCode.UNSET for s in found)


# --- over HTTP: retries, failures, servers ---------------------------------------------------


async def test_a_request_retried_then_answered_is_one_chat_span(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(Reply.error(500, code=3043), Reply.drop(), Reply.answer("fine"))
    async with workers_ai(wire, max_retries=2) as model:
        await Agent(model, instrument=traced()).run("hi")
    assert len(wire.requests) == 3
    chat = only(spans(), "chat")
    a = attrs(chat)
    assert chat.name == "chat @cf/meta/llama-3.2-3b-instruct"
    assert a["gen_ai.provider.name"] == "cloudflare.workers_ai"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == urlsplit(wire.url).port
    assert a["agentkit.request.retries"] == 2
    assert chat.status.status_code is StatusCode.UNSET and "error.type" not in a
    assert [(e.name, dict(e.attributes or {})) for e in chat.events] == [
        ("agentkit.retry", {"agentkit.retry.attempt": 1, "error.type": "ServerError"}),
        ("agentkit.retry", {"agentkit.retry.attempt": 2, "error.type": "ModelConnectionError"}),
    ]


async def test_a_request_that_fails_after_its_retries(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(*[Reply.error(503, message="busy")] * 3)
    async with workers_ai(wire, max_retries=2) as model:
        with pytest.raises(ServerError):
            await Agent(model, name="a", instrument=traced()).run("hi")
    found = spans()
    chat, root = only(found, "chat"), only(found, "invoke_agent")
    assert is_child(chat, root)
    assert attrs(chat)["agentkit.request.retries"] == 2
    for span in (chat, root):
        assert attrs(span)["error.type"] == "ServerError"
        assert span.status.status_code is StatusCode.ERROR
        assert "gave up after 3 attempts" in (span.status.description or "")
    assert [e.name for e in chat.events].count("exception") == 1


async def test_the_openai_compatible_backend_names_its_provider(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    with WireServer(["hello"], api_token=SECRET_TOKEN) as server:
        port = urlsplit(server.url).port
        async with OpenAICompatible(
            "llama", base_url=server.openai_base_url, api_key=SECRET_TOKEN
        ) as model:
            await Agent(model, instrument=traced()).run("hi")
    a = attrs(only(spans(), "chat"))
    assert a["gen_ai.provider.name"] == "openai" and a["server.port"] == port
    assert a["gen_ai.usage.input_tokens"] > 0


# --- streams and cancellation ----------------------------------------------------------------


async def test_a_streamed_run(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(Reply.calls(("lookup", {"key": "a"})), Reply.answer("the answer is A", chunk_chars=3))
    async with workers_ai(wire) as model:
        agent = Agent(model, [lookup], instrument=traced())
        events = [e async for e in agent.stream("go")]
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    found = spans()
    root = only(found, "invoke_agent")
    chats = named(found, "chat")
    assert len(found) == 4 and len(chats) == 2
    assert all(is_child(s, root) for s in found if s is not root)
    assert all(attrs(c)["gen_ai.request.stream"] is True for c in chats)
    assert attrs(chats[1])["gen_ai.response.finish_reasons"] == ("stop",)
    assert root.status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left current


async def test_a_stream_closed_early_ends_every_span(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(Reply.answer("a long answer in many small pieces", chunk_chars=2))
    async with workers_ai(wire) as model:
        agent = Agent(model, instrument=traced())
        async with contextlib.aclosing(agent.stream("go")) as events:
            async for event in events:
                assert isinstance(event, TextDelta)
                break
    found = spans()
    assert len(found) == 2
    for span in found:
        assert attrs(span)["error.type"] == "GeneratorExit"


async def test_a_run_cancelled_mid_tool(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    entered = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Never returns."""
        entered.set()
        await asyncio.sleep(3600)
        return "never"

    agent = Agent(
        ScriptedModel([ToolCall(name="wait_forever")]), [wait_forever], instrument=traced()
    )
    task = asyncio.create_task(agent.run("go"))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    found = spans()
    assert len(found) == 3
    for prefix in ("execute_tool", "invoke_agent"):
        span = only(found, prefix)
        assert attrs(span)["error.type"] == "CancelledError"
        assert span.status.status_code is StatusCode.ERROR
    assert "error.type" not in attrs(only(found, "chat"))


async def test_a_run_cancelled_mid_request(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(Reply.stalled(30))
    async with workers_ai(wire, timeout=60) as model:
        task = asyncio.create_task(Agent(model, instrument=traced()).run("go"))
        for _ in range(1000):
            if wire.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    found = spans()
    assert len(found) == 2
    assert attrs(only(found, "chat"))["error.type"] == "CancelledError"
    assert attrs(only(found, "invoke_agent"))["error.type"] == "CancelledError"


# --- switching it on and off -----------------------------------------------------------------


async def test_instrument_for_every_agent(
    provider: tuple[TracerProvider, InMemorySpanExporter], spans: Spans, no_global_tracing: None
) -> None:
    plain = Agent(ScriptedModel(["a", "b", "c"]))
    opted_out = Agent(ScriptedModel(["x"]), instrument=False)
    await plain.run("before")
    assert spans() == []
    settings = agentkit.instrument(provider[0], include_content=True)
    assert settings.include_content is True
    await plain.run("traced")
    await opted_out.run("not traced")
    assert len(spans()) == 2 and "gen_ai.input.messages" in attrs(only(spans(), "chat"))
    agentkit.uninstrument()
    await plain.run("after")
    assert len(spans()) == 2


async def test_instrument_true_follows_the_global_settings(
    provider: tuple[TracerProvider, InMemorySpanExporter], spans: Spans, no_global_tracing: None
) -> None:
    agent = Agent(ScriptedModel(["a"]), instrument=True)  # the global provider: not ours
    await agent.run("x")
    assert spans() == []
    agentkit.instrument(provider[0])
    agent.model = ScriptedModel(["b"])
    await agent.run("y")
    assert len(spans()) == 2


def test_a_bad_instrument_value_is_refused() -> None:
    with pytest.raises(agentkit.ConfigurationError, match="instrument must be"):
        Agent(ScriptedModel([]), instrument="yes")


def test_without_tracing_nothing_of_opentelemetry_is_imported() -> None:
    code = textwrap.dedent(
        """
        import sys
        import agentkit
        from agentkit.testing import ScriptedModel
        from agentkit import Agent, ToolCall, tool

        @tool
        def add(a: int, b: int) -> int:
            '''Add.'''
            return a + b

        hooks = agentkit.Hooks()
        for instrument in (None, False):
            agent = Agent(ScriptedModel([ToolCall(name="add", arguments={"a": 1, "b": 2}), "3"]),
                          [add], instrument=instrument, hooks=hooks)
            assert agent.run_sync("1+2") .output == "3"
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        assert "agentkit.tracing" not in sys.modules
        print("clean")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_without_the_otel_extra_the_error_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        import agentkit
        from agentkit.testing import ScriptedModel
        try:
            agentkit.Agent(ScriptedModel([]), instrument=True)
        except agentkit.ConfigurationError as exc:
            print(exc)
        try:
            agentkit.instrument()
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install 'agentkit[otel]'") == 2, done.stdout


# --- the token never shows -------------------------------------------------------------------


def span_texts(found: Sequence[ReadableSpan]) -> list[str]:
    """Every text a span carries: name, attributes, events, status, links, resource."""
    texts: list[str] = []
    for span in found:
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.append(event.name)
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
        texts.append(span.to_json())
    return texts


def http_faults() -> list[Reply]:
    return [
        *echoing_faults(),
        Reply.drop(),
        Reply.truncated(),
        Reply.invalid_json(),
        Reply.wrong_content_type(),
        Reply.error(500, message=f"internal: {SECRET_TOKEN}"),
        Reply.error(429, code=3040, message=f"slow down {SECRET_TOKEN}", retry_after=0),
    ]


def fault_cases(replies: list[Reply]) -> list[Any]:
    return [
        pytest.param(i, stream, id=f"{i}-{'stream' if stream else 'run'}")
        for i, reply in enumerate(replies)
        for stream in (False, True)
        if stream or reply.events is None
    ]


async def traced_fault_run(model: Any, stream: bool, instrumentation: Instrumentation) -> None:
    agent = Agent(model, [lookup], instrument=instrumentation)
    with pytest.raises(AgentKitError):
        if stream:
            async for _ in agent.stream("go"):
                pass
        else:
            await agent.run("go")


@pytest.mark.parametrize(("index", "stream"), fault_cases(http_faults()))
async def test_workers_ai_fault_spans_never_carry_the_token(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
    index: int,
    stream: bool,
) -> None:
    fault = http_faults()[index]
    # A tool step first; the fault then comes back on every attempt (retried ones included).
    wire.add(Reply.calls(("lookup", {"key": "a"})), fault, fault)
    async with workers_ai(wire, max_retries=1) as model:
        await traced_fault_run(model, stream, traced(True))
    found = spans()
    assert any(attrs(s).get("error.type") for s in named(found, "chat"))
    assert not leaks(span_texts(found)), leaks(span_texts(found))


@pytest.mark.parametrize(("index", "stream"), fault_cases(openai_faults()))
async def test_openai_fault_spans_never_carry_the_token(
    traced: Callable[..., Instrumentation], spans: Spans, index: int, stream: bool
) -> None:
    with WireServer([openai_faults()[index]], api_token=SECRET_TOKEN) as server:
        model = OpenAICompatible(
            "llama", base_url=server.openai_base_url, api_key=SECRET_TOKEN, max_retries=0
        )
        async with model:
            await traced_fault_run(model, stream, traced(True))
    found = spans()
    assert attrs(only(found, "chat")).get("error.type")
    assert not leaks(span_texts(found)), leaks(span_texts(found))


async def test_a_whole_traced_run_with_retries_shows_no_token(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    traced: Callable[..., Instrumentation],
    spans: Spans,
) -> None:
    wire.add(
        Reply.error(429, code=3040, message=SECRET_TOKEN, retry_after=0),
        Reply.calls(("lookup", {"key": "a"})),
        Reply.error(503, message=SECRET_TOKEN),
        Reply.answer("all done", chunk_chars=2),
    )
    async with workers_ai(wire, max_retries=3) as model:
        events = [e async for e in Agent(model, [lookup], instrument=traced(True)).stream("go")]
    assert events and len(wire.requests) == 4
    found = spans()
    assert sum(attrs(c)["agentkit.request.retries"] for c in named(found, "chat")) == 2
    assert not leaks(span_texts(found)), leaks(span_texts(found))


async def test_cached_input_tokens_are_reported_per_request_and_per_run(
    traced: Callable[..., Instrumentation], spans: Spans
) -> None:
    """What the provider served from its prompt cache shows on each chat span and on the run."""
    first = ModelResponse(
        tool_calls=[ToolCall(id="c1", name="lookup", arguments={"key": "ab"})],
        usage=Usage(prompt_tokens=100, completion_tokens=5, total_tokens=105, cached_tokens=0),
    )
    second = ModelResponse(
        text="AB",
        usage=Usage(prompt_tokens=120, completion_tokens=3, total_tokens=123, cached_tokens=96),
    )
    agent = Agent(ScriptedModel([first, second]), [lookup], instrument=traced())
    result = await agent.run("look up ab")
    assert result.usage.cached_tokens == 96
    found = spans()
    chats = named(found, "chat ")
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs(chats[0])
    assert attrs(chats[1])["gen_ai.usage.cache_read.input_tokens"] == 96
    assert attrs(only(found, "invoke_agent"))["gen_ai.usage.cache_read.input_tokens"] == 96
