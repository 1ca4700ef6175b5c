"""Every wire fault, at every step of a three-step run, with ``run`` and with ``stream``.

The run: the model calls ``lookup("a")``, then ``lookup("b")`` (legacy call shape), then
answers from both results. One fault is injected at one step. Either the client retries and
the run finishes with the right answer after exactly one extra request, or the run fails with
the right error after the right number of requests, with its transcript and usage intact and
no tool run twice. Single-request faults are covered one by one in ``test_models_faults.py``;
here they meet the agent loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from agentkit.agent import Agent, RunFinished
from agentkit.errors import (
    AgentKitError,
    AuthenticationError,
    BadRequestError,
    ModelConnectionError,
    ModelResponseError,
    ModelTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    StreamTruncatedError,
)
from agentkit.messages import TextDelta, Usage
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import tool

PROMPT = "Look up a and b, then report both."
STEPS = (0, 1, 2)  # 0: the first request; 1: after one tool call; 2: the final answer
STALL_TIMEOUT = 0.3  # the client's read timeout in stall cases; the server stalls longer
MAX_RETRIES = 2


class Scenario:
    """The scripted three-step run, with faults queued per step."""

    def __init__(self) -> None:
        self.faults: dict[int, list[Reply]] = {}
        self.lookups: list[str] = []

        @tool
        def lookup(key: str) -> str:
            """Look up a key.

            Args:
                key: the key to look up
            """
            self.lookups.append(key)
            return key.upper()

        self.tool = lookup

    @staticmethod
    def normal(step: int, request: WireRequest | None = None) -> Reply:
        if step == 0:
            return Reply.calls(("lookup", {"key": "a"}))
        if step == 1:
            return Reply.calls(("lookup", {"key": "b"}), shape="legacy")
        if request is None:
            return Reply.answer(ANSWER, chunk_chars=4)
        results = [m["content"] for m in request.messages if m["role"] == "tool"]
        return Reply.answer(f"lookup results: a={results[0]}, b={results[1]}", chunk_chars=4)

    def handler(self, request: WireRequest) -> Reply:
        step = sum(1 for m in request.messages if m["role"] == "tool")
        queued = self.faults.get(step)
        if queued:
            return queued.pop(0)
        return self.normal(step, request)


ANSWER = "lookup results: a=A, b=B"


@dataclass(frozen=True)
class Fault:
    name: str
    make: Callable[[Reply], Reply]  # from the step's normal reply
    error: type[AgentKitError] | None  # None: retried, then the run succeeds
    stall: bool = False


def _same(reply: Reply) -> Callable[[Reply], Reply]:
    return lambda normal: reply


FAULTS = [
    Fault("429-3040-retry-after", _same(Reply.error(429, code=3040, retry_after=0)), None),
    Fault("429-retry-after-ms", _same(Reply.error(429, code=3040, retry_after_ms=1)), None),
    Fault("429-no-retry-after", _same(Reply.error(429, message="Too many requests")), None),
    Fault("500", _same(Reply.error(500)), None),
    Fault("502", _same(Reply.error(502)), None),
    Fault("503", _same(Reply.error(503, code=3043, message="Service busy")), None),
    Fault("drop", _same(Reply.drop()), None),
    Fault("stall", _same(Reply.stalled(3.0)), None, stall=True),
    Fault(
        "3036-quota",
        _same(Reply.error(429, code=3036, message="daily free allocation", retry_after=0)),
        QuotaExceededError,
    ),
    Fault("400-5006", _same(Reply.error(400, code=5006, message="oneOf at '/' not met")), BadRequestError),
    Fault("401", _same(Reply.error(401, code=10000, message="Authentication error")), AuthenticationError),
    Fault("invalid-json", _same(Reply.invalid_json()), ModelResponseError),
    Fault("wrong-content-type", _same(Reply.wrong_content_type()), ModelResponseError),
]  # fmt: skip


def model_for(server: WireServer, workers_ai: Callable[..., WorkersAI], stall: bool) -> WorkersAI:
    return workers_ai(server, max_retries=MAX_RETRIES, timeout=STALL_TIMEOUT if stall else 5.0)


async def play(agent: Agent[str], stream: bool) -> tuple[str, list[str]]:
    """Run the agent; return its output and the text streamed (empty for ``run``)."""
    if not stream:
        return (await agent.run(PROMPT)).output, []
    deltas: list[str] = []
    output: str | None = None
    async for event in agent.stream(PROMPT):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        elif isinstance(event, RunFinished):
            output = event.result.output
    assert output is not None
    return output, deltas


def check_failure(
    error: AgentKitError, scenario: Scenario, step: int, check_transcript: Callable[..., None]
) -> None:
    """A run that failed at ``step``: ``step`` tool steps done, recorded and counted once."""
    check_transcript(error.messages, PROMPT, tool_results=step)
    assert [m.role for m in error.messages] == ["user"] + ["assistant", "tool"] * step
    assert scenario.lookups == ["a", "b"][:step]
    assert isinstance(error.usage, Usage)
    assert error.usage.requests == step and error.usage.tool_calls == step


def check_success(
    output: str,
    deltas: list[str],
    stream: bool,
    scenario: Scenario,
    result_messages: list[Any] | None = None,
) -> None:
    assert output == ANSWER
    assert scenario.lookups == ["a", "b"]
    if stream:
        assert "".join(deltas) == ANSWER  # shown once, even when a step was retried


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_one_fault_at_one_step(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    fault: Fault,
    step: int,
    stream: bool,
) -> None:
    scenario = Scenario()
    scenario.faults[step] = [fault.make(Scenario.normal(step))]
    wire.handler = scenario.handler
    async with model_for(wire, workers_ai, fault.stall) as model:
        agent = Agent(model, [scenario.tool])
        if fault.error is None:
            output, deltas = await play(agent, stream)
            check_success(output, deltas, stream, scenario)
            assert len(wire.requests) == 3 + 1  # one failed attempt, retried once
            assert [r.stream for r in wire.requests] == [stream] * 4
        else:
            with pytest.raises(fault.error) as info:
                await play(agent, stream)
            assert len(wire.requests) == step + 1  # never retried
            check_failure(info.value, scenario, step, check_transcript)


# Transient faults that go on past the retry budget end the run with the last error.
PERSISTENT = [
    ("429", Reply.error(429, code=3040, retry_after=0), RateLimitError),
    ("503", Reply.error(503, code=3043), ServerError),
    ("drop", Reply.drop(), ModelConnectionError),
]


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    ("reply", "error"), [(r, e) for _, r, e in PERSISTENT], ids=[n for n, _, _ in PERSISTENT]
)
async def test_a_fault_that_persists_fails_after_the_retry_budget(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    reply: Reply,
    error: type[AgentKitError],
    step: int,
    stream: bool,
) -> None:
    scenario = Scenario()
    scenario.faults[step] = [reply] * (MAX_RETRIES + 1)
    wire.handler = scenario.handler
    async with model_for(wire, workers_ai, stall=False) as model:
        with pytest.raises(error, match=f"gave up after {MAX_RETRIES + 1} attempts") as info:
            await play(Agent(model, [scenario.tool]), stream)
    assert len(wire.requests) == step + MAX_RETRIES + 1
    check_failure(info.value, scenario, step, check_transcript)


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_stalls_past_the_budget_fail_with_a_timeout(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    stream: bool,
) -> None:
    scenario = Scenario()
    scenario.faults[1] = [Reply.stalled(3.0), Reply.stalled(3.0)]
    wire.handler = scenario.handler
    async with workers_ai(wire, max_retries=1, timeout=STALL_TIMEOUT) as model:
        with pytest.raises(ModelTimeoutError, match="timeout") as info:
            await play(Agent(model, [scenario.tool]), stream)
    assert len(wire.requests) == 1 + 2
    check_failure(info.value, scenario, 1, check_transcript)


async def test_a_truncated_json_body_is_retried_at_every_step(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    scenario = Scenario()
    for step in STEPS:
        normal = Scenario.normal(step)
        scenario.faults[step] = [dataclasses.replace(normal, fault="truncate")]
    wire.handler = scenario.handler
    async with model_for(wire, workers_ai, stall=False) as model:
        output, deltas = await play(Agent(model, [scenario.tool]), stream=False)
    check_success(output, deltas, False, scenario)
    assert len(wire.requests) == 6  # each step cut once, then answered


# --- faults during a stream ------------------------------------------------------------------

MID_STREAM = {
    "truncated": dict(fault="truncate", after_events=2),
    "dropped": dict(fault="drop_stream", after_events=2),
    "stalled": dict(fault="stall_stream", after_events=2, stall=3.0),
}


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", list(MID_STREAM))
async def test_a_stream_cut_or_stalled_mid_way(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    kind: str,
    step: int,
) -> None:
    """Tool steps stream no text, so a cut is retried before anything reaches the caller.

    The answer streams text: once a piece reached the caller the stream is not replayed (the
    text would show twice), so the run fails with the stream's error and its transcript.
    """
    scenario = Scenario()
    normal = Scenario.normal(step)
    scenario.faults[step] = [dataclasses.replace(normal, **MID_STREAM[kind])]  # type: ignore[arg-type]
    wire.handler = scenario.handler
    stall = kind == "stalled"
    async with model_for(wire, workers_ai, stall) as model:
        agent = Agent(model, [scenario.tool])
        if step < 2:
            output, deltas = await play(agent, stream=True)
            check_success(output, deltas, True, scenario)
            assert len(wire.requests) == 4
            return
        error = ModelTimeoutError if stall else StreamTruncatedError
        deltas: list[str] = []
        with pytest.raises(error) as info:
            async for event in agent.stream(PROMPT):
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
    assert len(wire.requests) == 3
    assert deltas and ANSWER.startswith("".join(deltas))  # the part that arrived, once
    check_failure(info.value, scenario, 2, check_transcript)


async def test_faults_at_every_step_of_one_run(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    """Several faults in one run, one retry each: the run still finishes, every call answered."""
    scenario = Scenario()
    scenario.faults = {
        0: [Reply.error(429, code=3040, retry_after=0)],
        1: [Reply.drop(), Reply.error(502)],
        2: [Reply.truncated()],
    }
    wire.handler = scenario.handler
    async with workers_ai(wire, max_retries=3) as model:
        result = await Agent(model, [scenario.tool]).run(PROMPT)
    assert result.output == ANSWER and scenario.lookups == ["a", "b"]
    assert len(wire.requests) == 3 + 4
    assert result.usage.requests == 3 and result.usage.tool_calls == 2
    check_transcript(result.messages, PROMPT, tool_results=2)
