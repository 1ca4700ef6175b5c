"""A run that failed mid-way continues from ``error.messages`` without re-running finished tools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from agentkit.agent import Agent, RunFinished
from agentkit.errors import (
    AgentKitError,
    AuthenticationError,
    MaxStepsExceeded,
    QuotaExceededError,
    StreamTruncatedError,
    ToolExecutionError,
)
from agentkit.messages import Message
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import Tool, tool

PROMPT = "Fetch 1, 2 and 3, then sum them."


class Job:
    """Three fetch steps, then the sum; the server answers from the results it was sent."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.broken: set[str] = set()

        @tool
        def fetch(item: str) -> str:
            """Fetch an item.

            Args:
                item: the item number
            """
            self.runs[item] += 1
            if item in self.broken:
                raise RuntimeError(f"{item} is unavailable")
            return str(int(item) * 10)

        self.tool: Tool = fetch

    @staticmethod
    def handler(request: WireRequest) -> Reply:
        results = [m["content"] for m in request.messages if m["role"] == "tool"]
        if len(results) < 3:
            return Reply.calls(("fetch", {"item": str(len(results) + 1)}))
        return Reply.answer(f"sum = {sum(int(r) for r in results)}", chunk_chars=3)


async def resume(agent: Agent[str], history: list[Message], stream: bool) -> str:
    if not stream:
        return (await agent.run(message_history=history)).output
    async for event in agent.stream(message_history=history):
        if isinstance(event, RunFinished):
            output: str = event.result.output
            return output
    raise AssertionError("no RunFinished")


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Reply.error(401, code=10000, message="Authentication error"), AuthenticationError),
        (Reply.error(429, code=3036, message="daily free allocation"), QuotaExceededError),
    ],
    ids=["401", "quota"],
)
async def test_resume_after_a_model_error_two_steps_in(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    fault: Reply,
    error: type[AgentKitError],
    stream: bool,
) -> None:
    job = Job()

    def handler(request: WireRequest) -> Reply:
        done = sum(1 for m in request.messages if m["role"] == "tool")
        if done == 2 and not job.runs["resumed"]:
            job.runs["resumed"] += 1  # fail once, at the third step
            return fault
        return Job.handler(request)

    wire.handler = handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [job.tool])
        with pytest.raises(error) as info:
            await resume(agent, [Message.user(PROMPT)], stream)
        transcript = info.value.messages
        check_transcript(transcript, PROMPT, tool_results=2)
        assert len(wire.requests) == 3
        output = await resume(agent, transcript, stream)
    assert output == "sum = 60"
    assert job.runs == Counter({"1": 1, "2": 1, "3": 1, "resumed": 1})  # each fetch ran once
    assert len(wire.requests) == 5  # the failed request again, then the answer
    # The resumed requests carry the earlier results, in order.
    sent = [m["content"] for m in wire.requests[3].messages if m["role"] == "tool"]
    assert sent == ["10", "20"]


async def test_resume_after_a_stream_cut_mid_answer(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    job = Job()
    cut = {"done": False}

    def handler(request: WireRequest) -> Reply:
        reply = Job.handler(request)
        if reply.text and not cut["done"]:
            cut["done"] = True
            reply.fault, reply.after_events = "drop_stream", 2
        return reply

    wire.handler = handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [job.tool])
        with pytest.raises(StreamTruncatedError) as info:
            await resume(agent, [Message.user(PROMPT)], stream=True)
        check_transcript(info.value.messages, PROMPT, tool_results=3)
        output = await resume(agent, info.value.messages, stream=True)
    assert output == "sum = 60" and job.runs == Counter({"1": 1, "2": 1, "3": 1})


async def test_resume_after_max_steps_with_a_larger_budget(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    job = Job()
    wire.handler = Job.handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [job.tool], max_steps=2)
        with pytest.raises(MaxStepsExceeded) as info:
            await agent.run(PROMPT)
        result = await agent.run(message_history=info.value.messages, max_steps=5)
    assert result.output == "sum = 60"
    assert job.runs == Counter({"1": 1, "2": 1, "3": 1})
    assert result.steps == 2  # only the new requests count in the resumed run


async def test_resume_runs_only_the_calls_left_unanswered(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    job = Job()
    job.broken.add("2")
    wire.add(
        Reply.calls(("fetch", {"item": "1"}), ("fetch", {"item": "2"}), ("fetch", {"item": "3"}))
    )
    wire.handler = Job.handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [job.tool], on_tool_error="raise", max_tool_concurrency=1)
        with pytest.raises(ToolExecutionError) as info:
            await agent.run(PROMPT)
        check_transcript(info.value.messages, PROMPT, open_tail=True)
        job.broken.clear()
        result = await agent.run(message_history=info.value.messages)
    assert result.output == "sum = 60"
    # "1" and "3" finished (their results are in the transcript) and do not run again.
    assert job.runs == Counter({"1": 1, "2": 2, "3": 1})
    check_transcript(result.messages, PROMPT, tool_results=3)


async def test_a_resumed_history_with_a_new_prompt_continues_the_conversation(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    job = Job()
    wire.handler = Job.handler
    async with workers_ai(wire) as model:
        agent = Agent(model, [job.tool])
        first = await agent.run(PROMPT)
        wire.handler = None
        wire.add("It was 60.")
        second = await agent.run("What was the sum?", message_history=first.messages)
    assert second.output == "It was 60." and job.runs == Counter({"1": 1, "2": 1, "3": 1})
    check_transcript(second.messages, PROMPT, tool_results=3)
    assert [m.role for m in second.new_messages] == ["user", "assistant"]
