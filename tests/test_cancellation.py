"""Cancelling a run, mid-tool and mid-request, and a real Ctrl-C in ``agentkit run``.

After a cancel: no task of the run is left, no thread either (agentkit's own idle workers
aside), the transcript on the ``CancelledError`` answers every recorded call, and the model
still works for the next run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _secrets import SECRET_TOKEN

from agentkit.agent import Agent, ToolCallStarted
from agentkit.messages import Message
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import _workers, tool

PROMPT = "Work, please."
OWN_THREADS = ("agentkit-sync", "agentkit-wire-server", "agentkit-tool-")


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """After the test, no thread it started is left (agentkit's own idle threads aside)."""
    before = set(threading.enumerate())
    yield
    extra = [
        t for t in threading.enumerate() if t not in before and not t.name.startswith(OWN_THREADS)
    ]
    assert not extra, f"threads left behind: {extra}"


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (for at most 10 s)."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def cancelled_transcript(task: asyncio.Task[Any]) -> list[Message]:
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await asyncio.wait_for(task, timeout=10)
    messages: list[Message] = info.value.messages  # type: ignore[attr-defined]
    return messages


def assert_no_other_tasks() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}


def call_then_answer(name: str, **arguments: Any) -> Callable[[WireRequest], Reply]:
    def handler(request: WireRequest) -> Reply:
        if any(m["role"] == "tool" for m in request.messages):
            return Reply.answer("done")
        return Reply.calls((name, arguments))

    return handler


# --- mid-tool -----------------------------------------------------------------------------------


async def test_cancel_while_an_async_tool_runs(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    no_leftovers: None,
) -> None:
    entered = asyncio.Event()
    finished: list[str] = []

    @tool
    async def slow(seconds: float) -> str:
        """Work for a while.

        Args:
            seconds: how long
        """
        entered.set()
        try:
            await asyncio.sleep(seconds)
        finally:
            finished.append("cleaned up")
        return "done"

    @tool
    async def quick() -> str:
        """Quick work."""
        return "quick result"  # done in the same loop turn in which `slow` starts

    wire.add(Reply.calls(("slow", {"seconds": 60}), ("quick", {})))
    async with workers_ai(wire) as model:
        task = asyncio.create_task(Agent(model, [slow, quick]).run(PROMPT))
        await asyncio.wait_for(entered.wait(), timeout=10)
        messages = await cancelled_transcript(task)
        assert finished == ["cleaned up"]  # the tool saw the cancel and cleaned up
        check_transcript(messages, PROMPT, tool_results=2)
        results = {m.name: m for m in messages if m.role == "tool"}
        assert results["slow"].is_error and "cancelled" in results["slow"].content
        assert results["quick"].content == "quick result"  # a finished call keeps its result
        assert_no_other_tasks()
        # The same model serves the next run (a resume), without running anything twice.
        wire.add("resumed")
        resumed = await Agent(model, [slow, quick]).run(message_history=messages)
    assert resumed.output == "resumed" and finished == ["cleaned up"]


async def test_cancel_while_a_sync_tool_blocks_in_a_thread(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    no_leftovers: None,
) -> None:
    release, entered, finished = threading.Event(), threading.Event(), threading.Event()

    @tool(blocking=True)
    def blocks() -> str:
        """Blocks until released."""
        entered.set()
        release.wait(30)
        finished.set()
        return "late"

    busy = _workers.busy
    wire.handler = call_then_answer("blocks")
    try:
        async with workers_ai(wire) as model:
            task = asyncio.create_task(Agent(model, [blocks]).run(PROMPT))
            await wait_until(entered.is_set, "the tool to start")
            messages = await cancelled_transcript(task)
            check_transcript(messages, PROMPT, tool_results=1)
            assert "cancelled" in messages[-1].content
            assert_no_other_tasks()
            assert not finished.is_set()  # the thread cannot be stopped; it is abandoned
    finally:
        release.set()
    assert finished.wait(5)
    await wait_until(lambda: _workers.busy <= busy, "the worker thread to be free")


# --- mid-request --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_cancel_while_waiting_for_the_model(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    no_leftovers: None,
    stream: bool,
) -> None:
    @tool
    def step() -> str:
        """One step."""
        return "stepped"

    # The first request gets a call; the second stalls until the test cancels the run.
    wire.add(Reply.calls(("step", {})), Reply.stalled(30))
    async with workers_ai(wire) as model:
        agent = Agent(model, [step])

        async def consume() -> None:
            if stream:
                async for _ in agent.stream(PROMPT):
                    pass
            else:
                await agent.run(PROMPT)

        task = asyncio.create_task(consume())
        await wait_until(lambda: len(wire.requests) == 2, "the second request")
        messages = await cancelled_transcript(task)
        check_transcript(messages, PROMPT, tool_results=1)
        assert [m.role for m in messages] == ["user", "assistant", "tool"]
        assert_no_other_tasks()
        wire.add("after the cancel")
        assert (await agent.run("again")).output == "after the cancel"


async def test_cancel_in_the_middle_of_a_streamed_answer(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    no_leftovers: None,
) -> None:
    wire.add(Reply(text="a slow answer", chunk_chars=2, fault="stall_stream", stall=30))
    async with workers_ai(wire) as model:
        agent = Agent(model, [])
        seen: list[Any] = []

        async def consume() -> None:
            async for event in agent.stream(PROMPT):
                seen.append(event)

        task = asyncio.create_task(consume())
        await wait_until(lambda: bool(seen), "the first text delta")
        messages = await cancelled_transcript(task)
    check_transcript(messages, PROMPT, tool_results=0)
    assert_no_other_tasks()


async def test_leaving_a_stream_early_closes_it(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], no_leftovers: None
) -> None:
    @tool
    def step() -> str:
        """One step."""
        return "stepped"

    wire.handler = call_then_answer("step")
    async with workers_ai(wire) as model:
        events = Agent(model, [step]).stream(PROMPT)
        assert isinstance(events, AsyncIterator)
        async for event in events:
            if isinstance(event, ToolCallStarted):
                break
        await events.aclose()  # type: ignore[attr-defined]
        assert_no_other_tasks()
    assert len(wire.requests) == 1


async def test_a_timeout_around_a_run_keeps_the_transcript_on_its_cause(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    wire.add(Reply.stalled(30))
    async with workers_ai(wire) as model:
        with pytest.raises(TimeoutError) as info:
            await asyncio.wait_for(Agent(model, []).run(PROMPT), timeout=0.2)
    cancelled = info.value.__cause__
    assert isinstance(cancelled, asyncio.CancelledError)
    check_transcript(cancelled.messages, PROMPT, tool_results=0)  # type: ignore[attr-defined]


# --- a real Ctrl-C ------------------------------------------------------------------------------

AGENT_FILE = textwrap.dedent(
    """
    import asyncio, os, pathlib, time
    from agentkit.agent import Agent
    from agentkit.messages import ToolCall
    from agentkit.models import WorkersAI
    from agentkit.testing import FunctionModel
    from agentkit.tools import tool

    MARK = pathlib.Path(os.environ["MARK_FILE"])

    @tool(blocking=True)
    def block() -> str:
        '''Blocks a thread for a minute.'''
        MARK.write_text("started")
        time.sleep(60)
        return "never"

    @tool
    async def wait() -> str:
        '''Waits a minute.'''
        MARK.write_text("started")
        await asyncio.sleep(60)
        return "never"

    def reply(messages, tools):
        return ToolCall(name=os.environ["TOOL"], arguments={})

    if os.environ.get("BASE_URL"):
        model = WorkersAI(account_id="acct", base_url=os.environ["BASE_URL"], timeout=60)
    else:
        model = FunctionModel(reply)
    agent = Agent(model, [block, wait])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("where", ["sync-tool", "async-tool", "request"])
def test_ctrl_c_in_agentkit_run_exits_130_quickly_without_traceback(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "slow_agent.py"
    path.write_text(AGENT_FILE)
    mark = tmp_path / "mark"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env.update(MARK_FILE=str(mark), TOOL="block" if where == "sync-tool" else "wait")
    with WireServer([Reply.stalled(60)], api_token=SECRET_TOKEN) as server:
        if where == "request":
            env.update(BASE_URL=server.base_url, CLOUDFLARE_API_TOKEN=SECRET_TOKEN)
        process = subprocess.Popen(
            [sys.executable, "-m", "agentkit", "run", f"{path}:agent", "go"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while not (server.requests if where == "request" else mark.exists()):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the run never got going"
                time.sleep(0.01)
            process.send_signal(signal.SIGINT)
            # The tool sleeps for a minute: finishing within the wait means it was not awaited.
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert server.violations == []
    assert process.returncode == 130, err
    assert err.strip() == "agentkit run: interrupted"
    assert "Traceback" not in err + out and SECRET_TOKEN not in err + out
