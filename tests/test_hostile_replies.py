"""Replies built to hurt: arguments nested 100,000 deep, huge Python literals, thousands of calls
in one reply, tools that raise ``KeyboardInterrupt``, a token budget a run must not overshoot.

Each one ends as something the model can read, or as a typed error that carries the transcript.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit.agent import (
    DEFAULT_MAX_TOOL_CALLS_PER_STEP,
    Agent,
    AgentEvent,
    RunFinished,
    RunResult,
    StepFinished,
    ToolCallFinished,
    ToolCallStarted,
)
from agentkit.errors import (
    ConfigurationError,
    OutputValidationError,
    ToolExecutionError,
    UsageLimitExceeded,
)
from agentkit.messages import (
    Message,
    ModelEvent,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ToolCall,
    Usage,
)
from agentkit.models import WorkersAI
from agentkit.models._textcalls import MAX_LITERAL_CHARS, read_arguments, recover_tool_calls
from agentkit.settings import ModelSettings
from agentkit.testing import ScriptedModel
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import Tool, tool

PROMPT = "What is stored under a?"
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_IN_TEXT = "[" * 50_000 + "]" * 50_000  # short enough to be searched for calls

runs: list[str] = []


@tool
def lookup(key: str) -> str:
    """Look up a key.

    Args:
        key: the key to look up
    """
    runs.append(key)
    return key.upper()


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()


def call(name: str, id: str = "", **arguments: Any) -> ToolCall:
    return ToolCall(id=id or f"id_{name}", name=name, arguments=arguments)


def answer_from_results(request: WireRequest) -> Reply:
    results = [m["content"] for m in request.messages if m["role"] == "tool"]
    return Reply.answer(f"found {results[-1]}")


async def run_agent(agent: Agent[Any], stream: bool) -> RunResult[Any]:
    if not stream:
        return await agent.run(PROMPT)
    async for event in agent.stream(PROMPT):
        if isinstance(event, RunFinished):
            return event.result
    raise AssertionError("no RunFinished event")


def wire_call(arguments: str, call_id: str = "x1") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }


# --- arguments that cannot be read --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize(
    ("arguments", "explanation"),
    [
        (DEEP, "nest arrays or objects too deeply"),
        ('{"key": ' + DEEP + "}", "nest arrays or objects too deeply"),
        ("{'key': " + repr("a" * MAX_LITERAL_CHARS) + "}", f"limit {MAX_LITERAL_CHARS:,}"),
    ],
    ids=["nested", "nested-value", "huge-literal"],
)
async def test_unreadable_arguments_are_a_tool_error_and_the_tool_does_not_run(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
    arguments: str,
    explanation: str,
) -> None:
    wire.add(Reply.calls(wire_call(arguments)), Reply.calls(("lookup", {"key": "a"})))
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        result = await run_agent(Agent(model, [lookup]), stream)
    assert result.output == "found A"
    check_transcript(result.messages, PROMPT, tool_results=2)
    error = result.messages[2]
    assert error.role == "tool" and error.is_error
    assert explanation in error.content
    assert "Call lookup again with one JSON object of its arguments (key)" in error.content
    assert runs == ["a"]  # the unreadable call never ran


def test_python_literal_arguments_are_read_up_to_the_cap() -> None:
    small = "{'key': " + repr("a" * (MAX_LITERAL_CHARS - 20)) + "}"
    assert len(small) <= MAX_LITERAL_CHARS
    assert read_arguments(small) == ({"key": "a" * (MAX_LITERAL_CHARS - 20)}, None)
    big = "{'key': " + repr("a" * MAX_LITERAL_CHARS) + "}"
    arguments, problem = read_arguments(big)
    assert arguments == {} and problem is not None and "too long" in problem
    # JSON is not capped here (it is parsed in linear time and memory)
    assert read_arguments('{"key": "' + "a" * 100_000 + '"}')[1] is None


@pytest.mark.parametrize(
    "text",
    [
        "<function=lookup>" + DEEP_IN_TEXT + "</function>",
        '{"name": "lookup", "parameters": ' + DEEP_IN_TEXT + "}",
        "[lookup(key=" + "[" * 5_000 + "])]",
    ],
    ids=["function-tag", "json", "pythonic"],
)
def test_calls_written_as_text_with_deep_nesting_stay_text(text: str) -> None:
    calls, rest = recover_tool_calls(text, [lookup])
    assert calls == [] and rest == text


def test_arguments_that_are_not_an_object_say_what_they_were() -> None:
    assert read_arguments("[1, 2]") == ({}, "the arguments must be one JSON object, got a list")
    assert read_arguments("{not json") == ({}, "the arguments are not valid JSON")
    assert read_arguments(None) == ({}, None)
    assert read_arguments("  ") == ({}, None)


class City(BaseModel):
    name: str


@pytest.mark.parametrize(
    "bad",
    [DEEP, "Here it is: " + DEEP, "```json\n" + DEEP + "\n```"],
    ids=["bare", "in-prose", "fenced"],
)
async def test_a_deeply_nested_final_answer_is_an_output_error_within_the_retry_budget(
    bad: str,
) -> None:
    model = ScriptedModel([bad, bad])
    with pytest.raises(OutputValidationError, match="after 2 attempts") as info:
        await Agent(model, output_type=City, retries=1).run("Which city?")
    assert info.value.messages[-1].content == bad
    assert len(model.requests) == 2
    assert "too deeply" in model.requests[1].last.content  # the model was told why

    fixed = ScriptedModel([bad, '{"name": "Paris"}'])
    result = await Agent(fixed, output_type=City, retries=1).run("Which city?")
    assert result.output == City(name="Paris")


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_an_answer_too_long_to_send_back_whole_is_cut_on_the_wire_and_the_run_goes_on(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], stream: bool
) -> None:
    # The model's own words, longer than Workers AI accepts in one message, go back cut (the
    # server checks each body against the schema); the transcript keeps them whole.
    wire.add(Reply.answer(DEEP), Reply.answer('{"name": "Paris"}'))
    async with workers_ai(wire) as model:
        result = await run_agent(Agent(model, output_type=City), stream)
    assert result.output == City(name="Paris")
    assert next(m.content for m in result.messages if m.role == "assistant") == DEEP
    sent = next(m for m in wire.requests[1].messages if m["role"] == "assistant")
    assert len(sent["content"]) <= 131_072
    assert sent["content"].endswith(f"of {len(DEEP):,} characters]")


async def test_calls_with_arguments_too_long_to_send_back_whole_do_not_end_the_run(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    huge = json.dumps({"key": "k" * 300_000})
    wire.add(Reply.calls(wire_call(huge)), Reply.calls(("lookup", {"key": "a"})))
    wire.handler = answer_from_results
    async with workers_ai(wire) as model:
        result = await Agent(model, [lookup]).run(PROMPT)
    assert result.output == "found A"
    assert runs == ["k" * 300_000, "a"]


async def test_a_user_message_too_long_to_send_is_refused_before_any_request(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    async with workers_ai(wire) as model:
        with pytest.raises(ConfigurationError, match=r"message 0 \(user\) has 131073 characters"):
            await Agent(model).run("x" * 131_073)
    assert wire.requests == []


# --- too many calls in one reply ------------------------------------------------------------------


async def test_calls_past_the_per_step_cap_do_not_run_and_the_model_is_told() -> None:
    calls = [call("lookup", id=f"c{i}", key=str(i)) for i in range(40)]
    model = ScriptedModel([calls, "done"])
    agent = Agent(model, [lookup], max_tool_calls_per_step=5)
    events = [e async for e in agent.stream("go")]
    result = events[-1].result  # type: ignore[union-attr]
    assert result.output == "done"
    assert sorted(runs, key=int) == ["0", "1", "2", "3", "4"]
    assert result.usage.tool_calls == 5
    # the recorded turn holds the calls that ran, each answered; a note tells the model the rest
    turn = result.messages[1]
    assert [c.id for c in turn.tool_calls] == [f"c{i}" for i in range(5)]
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert [m.tool_call_id for m in tool_messages] == [f"c{i}" for i in range(5)]
    note = model.requests[1].last
    assert note.role == "user"
    assert "made 40 tool calls; only the first 5 ran" in note.content
    assert "The other 35 did not run (calls to: lookup)" in note.content
    # the calls that ran have their pair of events, in call order
    started = [e.call.id for e in events if isinstance(e, ToolCallStarted)]
    finished = [e.call.id for e in events if isinstance(e, ToolCallFinished)]
    assert started == finished == [f"c{i}" for i in range(5)]


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_reply_of_twenty_thousand_calls_runs_the_default_cap_and_the_run_goes_on(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    stream: bool,
) -> None:
    # Over the wire: the next request must still be one Workers AI accepts (the server checks
    # each body against the schema), so the turn cannot carry 20,000 calls and their answers.
    calls = [("lookup", {"key": str(i)}) for i in range(20_000)]
    wire.add(Reply.calls(*calls), Reply.answer("done"))
    async with workers_ai(wire) as model:
        result = await run_agent(Agent(model, [lookup]), stream)
    assert result.output == "done"
    assert len(runs) == DEFAULT_MAX_TOOL_CALLS_PER_STEP == 32
    assert sum(m.role == "tool" for m in result.messages) == 32
    last = wire.requests[-1].body["messages"][-1]
    assert last["role"] == "user"
    assert "made 20000 tool calls; only the first 32 ran" in last["content"]


async def test_a_history_with_calls_past_the_cap_has_each_one_answered() -> None:
    # A transcript made elsewhere may end with more unanswered calls than run per step: each
    # call past the cap is answered with why it did not run, so the transcript stays valid.
    calls = [call("lookup", id=f"c{i}", key=str(i)) for i in range(8)]
    history = [Message(role="user", content="go"), Message(role="assistant", tool_calls=calls)]
    model = ScriptedModel(["done"])
    result = await Agent(model, [lookup], max_tool_calls_per_step=3).run(message_history=history)
    assert result.output == "done"
    assert sorted(runs, key=int) == ["0", "1", "2"]
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert [m.tool_call_id for m in tool_messages] == [f"c{i}" for i in range(8)]
    assert all(m.is_error for m in tool_messages[3:])
    assert "made 8 tool calls and only the first 3 run per reply" in tool_messages[3].content


def test_the_per_step_cap_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_tool_calls_per_step"):
        Agent(ScriptedModel([]), max_tool_calls_per_step=0)


# --- tools that raise KeyboardInterrupt, SystemExit, GeneratorExit --------------------------------


def stopping_tool(error: type[BaseException], kind: str) -> Tool:
    if kind == "async":

        async def stop() -> str:
            """Stops."""
            raise error("stop here")

        return tool(stop)

    def stop_sync() -> str:
        """Stops."""
        raise error("stop here")

    return tool(stop_sync, name="stop", blocking=kind == "thread")


@tool
async def slow(key: str) -> str:
    """Takes a moment.

    Args:
        key: anything
    """
    await asyncio.sleep(0.02)
    return key


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
@pytest.mark.parametrize("kind", ["async", "thread", "inline"])
@pytest.mark.parametrize("calls", [1, 2])
async def test_a_tool_raising_a_base_exception_ends_its_own_run_only(
    error: type[BaseException], kind: str, calls: int
) -> None:
    first = [call("stop", id="s1")] + ([call("slow", id="k1", key="x")] if calls == 2 else [])
    bad = Agent(ScriptedModel([first, "never"]), [stopping_tool(error, kind), slow])
    good = Agent(ScriptedModel([call("slow", key="y"), call("slow", key="z"), "fine"]), [slow])
    outcomes = await asyncio.gather(bad.run("go"), good.run("go"), return_exceptions=True)

    failed, finished = outcomes
    assert isinstance(finished, RunResult) and finished.output == "fine"
    assert isinstance(failed, ToolExecutionError), repr(failed)
    assert isinstance(failed.original, error)
    assert f"raised {error.__name__}" in str(failed)
    messages: list[Message] = failed.messages  # type: ignore[assignment]
    assert messages[-1 if calls == 1 else -2].tool_calls[0].id == "s1"
    if calls == 2:  # the other call of the turn finished and is kept
        assert messages[-1].tool_call_id == "k1" and messages[-1].content == "x"
    assert failed.usage is not None and failed.usage.requests == 1


async def test_on_tool_error_return_still_stops_the_run_for_a_keyboard_interrupt() -> None:
    agent = Agent(
        ScriptedModel([call("stop"), "never"]),
        [stopping_tool(KeyboardInterrupt, "async")],
        on_tool_error="return",
    )
    with pytest.raises(ToolExecutionError) as info:
        await agent.run("go")
    assert info.value.messages is not None


# --- settings given as a dict -------------------------------------------------------------------


def test_settings_as_a_dict_are_checked_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="temperature=9"):
        Agent(ScriptedModel([]), settings={"temperature": 9})
    with pytest.raises(ConfigurationError, match="unknown setting 'temprature'"):
        Agent(ScriptedModel([]), settings={"temprature": 0.5})
    with pytest.raises(ConfigurationError, match="ModelSettings or a dict"):
        Agent(ScriptedModel([]), settings=0.5)  # type: ignore[arg-type]


async def test_settings_as_a_dict_reach_the_model() -> None:
    model = ScriptedModel(["ok"])
    agent = Agent(model, settings={"temperature": 0.5, "max_tokens": 100})
    assert agent.settings == ModelSettings(temperature=0.5, max_tokens=100)
    await agent.run("go")
    assert model.requests[0].settings == ModelSettings(temperature=0.5, max_tokens=100)


# --- the token budget holds ------------------------------------------------------------------------


class GrowingModel:
    """A model whose prompt is the whole transcript so far, replying with up to 400 tokens
    (fewer when ``max_tokens`` says so); each tool result adds 10 tokens."""

    model_name = "growing"

    def __init__(self) -> None:
        self.context = 100
        self.max_tokens: list[int | None] = []

    async def request(
        self, messages: Sequence[Message], tools: Sequence[Any], settings: Any = None
    ) -> ModelResponse:
        limit = settings.max_tokens if settings is not None else None
        self.max_tokens.append(limit)
        prompt = self.context
        completion = min(400, limit or 400)
        self.context = prompt + completion + 10
        return ModelResponse(
            tool_calls=[call("lookup", id=f"g{len(self.max_tokens)}", key="a")],
            usage=Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            ),
        )

    def stream(
        self, messages: Sequence[Message], tools: Sequence[Any], settings: Any = None
    ) -> AsyncIterator[ModelEvent]:
        async def events() -> AsyncIterator[ModelEvent]:
            yield ResponseDone(await self.request(messages, tools, settings))

        return events()


async def test_the_token_budget_caps_each_reply_by_what_is_left() -> None:
    model = GrowingModel()
    with pytest.raises(UsageLimitExceeded) as info:
        await Agent(model, [lookup], max_total_tokens=1200, max_steps=10).run("go")
    used = info.value.usage.total_tokens  # type: ignore[union-attr]
    # 500 (100 + 400), then the reply gets 1200 - 500 - 500 = 200 tokens: 510 + 200 = 710.
    assert model.max_tokens == [1200, 200]
    assert used == 1210  # over only by the 10 tokens of tool output the prompt gained
    assert used <= 1200 + 10


async def test_without_a_budget_the_settings_pass_unchanged() -> None:
    model = GrowingModel()
    settings = ModelSettings(max_tokens=300)
    with pytest.raises(UsageLimitExceeded):
        # max_repeats=None: the model repeats one call, and this test is about the budget.
        agent = Agent(model, [lookup], settings=settings, max_total_tokens=10_000, max_repeats=None)
        await agent.run("go")
    assert model.max_tokens[0] == 300  # within the budget: the agent's own settings go as they are


# --- documented behaviour, pinned ------------------------------------------------------------------


def describe(events: list[AgentEvent]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for event in events:
        if isinstance(event, ToolCallStarted):
            out.append(("started", event.call.name))
        elif isinstance(event, ToolCallFinished):
            out.append(("finished", event.result.content))
        elif isinstance(event, StepFinished):
            out.append(("step", event.step))
        elif isinstance(event, RunFinished):
            out.append(("done", event.result.output))
    return out


async def test_iter_without_streaming_gives_the_same_events_without_text() -> None:
    def script() -> ScriptedModel:
        return ScriptedModel(
            [
                ModelResponse(text="Let me look.", tool_calls=[call("lookup", key="a")]),
                "It is A.",
            ]
        )

    streamed = [e async for e in Agent(script(), [lookup]).iter("go", stream=True)]
    plain = [e async for e in Agent(script(), [lookup]).iter("go", stream=False)]
    assert any(isinstance(e, TextDelta) for e in streamed)
    assert not any(isinstance(e, TextDelta) for e in plain)
    assert describe(plain) == describe(streamed)
    assert describe(plain) == [
        ("started", "lookup"),
        ("finished", "A"),
        ("step", 1),
        ("step", 2),
        ("done", "It is A."),
    ]


async def test_a_call_needing_approval_without_a_callback_is_refused_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guarded = tool(lookup.function, name="guarded", requires_approval=True)
    model = ScriptedModel([call("guarded", key="a"), "ok"])
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        result = await Agent(model, [guarded]).run("go")
    assert runs == []
    assert result.messages[-2].is_error and "did not approve" in result.messages[-2].content
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["call to guarded needs approval but the agent has no approve callback"]


async def test_tool_results_and_arguments_are_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @tool
    def secret_lookup(key: str) -> str:
        """Look up a key.

        Args:
            key: the key
        """
        return "RESULT-" + key[::-1]

    model = ScriptedModel([call("secret_lookup", key="ARGUMENT-xyz"), "done"])
    with caplog.at_level(logging.DEBUG, logger="agentkit"):
        result = await Agent(model, [secret_lookup]).run("go")
    assert result.messages[-2].content == "RESULT-zyx-TNEMUGRA"
    assert any(r.name == "agentkit.agent" for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert "RESULT-" not in text and "ARGUMENT-" not in text, text


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_an_approval_callback_leaves_the_run_with_its_transcript(
    error: type[BaseException],
) -> None:
    def approve(call: ToolCall) -> bool:
        if call.id == "c2":
            raise error()
        return True

    guarded = tool(lookup.function, name="guarded", requires_approval=True)
    calls = [call("guarded", id="c1", key="a"), call("guarded", id="c2", key="b")]
    agent = Agent(ScriptedModel([calls, "never"]), [guarded], approve=approve)
    with pytest.raises(error) as info:
        asyncio.run(agent.run("go"))  # an interrupt stops the loop: a loop of its own
    messages: list[Message] = info.value.messages  # type: ignore[attr-defined]
    answered = [m.tool_call_id for m in messages if m.role == "tool"]
    if error is KeyboardInterrupt:  # like a cancel: the open call is answered as cancelled
        assert answered == ["c1", "c2"]
        assert messages[-1].content.startswith("The call was cancelled")
    else:  # like on_tool_error="raise": the failed call waits for a resume
        assert answered == ["c1"]
    assert runs == ["a"]
