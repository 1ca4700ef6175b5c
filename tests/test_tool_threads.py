"""The threads that run sync tools, under pressure: every thread busy, calls that time out before
they start, threads stuck in calls nobody waits for any more.

Each test gets its own small pool (``limit`` threads for calls being waited for, ``spare`` for
stuck ones), so the numbers do not depend on the machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from agentkit import tools as tools_module
from agentkit.agent import Agent
from agentkit.errors import ToolTimeoutError
from agentkit.messages import ToolCall
from agentkit.testing import ScriptedModel
from agentkit.tools import _Workers, tool


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of each test, so no thread stays blocked."""
    event = threading.Event()
    yield event
    event.set()


def small_pool(monkeypatch: pytest.MonkeyPatch, limit: int, spare: int) -> _Workers:
    pool = _Workers(limit, spare)
    monkeypatch.setattr(tools_module, "_workers", pool)
    return pool


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting for {what}")


async def test_a_call_that_timed_out_before_it_started_never_runs(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    pool = small_pool(monkeypatch, limit=2, spare=0)
    started: list[str] = []

    @tool(blocking=True)
    def hold(name: str) -> str:
        """Holds a thread until released.

        Args:
            name: a label
        """
        started.append(name)
        release.wait(10)
        return name

    @tool(timeout=0.05)
    def quick(name: str) -> str:
        """Returns at once.

        Args:
            name: a label
        """
        started.append(name)
        return name

    holders = [asyncio.create_task(hold.run({"name": f"hold{i}"})) for i in range(2)]
    await until(lambda: len(started) == 2, "both threads to be taken")
    outcomes = await asyncio.gather(
        *(quick.run({"name": f"quick{i}"}) for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, ToolTimeoutError) for o in outcomes), outcomes
    assert str(outcomes[0]) == (
        "tool 'quick' timed out after 0.05 s before a thread was free to start it; it did not run"
    )
    release.set()
    assert [r.content for r in await asyncio.gather(*holders)] == ["hold0", "hold1"]
    await until(lambda: pool.busy == 0, "the pool to be idle")
    assert sorted(started) == ["hold0", "hold1"]  # no timed-out call ran later


async def test_threads_stuck_after_a_timeout_do_not_starve_other_tools(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    pool = small_pool(monkeypatch, limit=2, spare=8)
    started: list[int] = []

    @tool(timeout=0.3)
    def stuck() -> str:
        """Blocks until released."""
        started.append(1)
        release.wait(10)
        return "late"

    @tool(blocking=True)
    def healthy(n: int) -> int:
        """Doubles a number.

        Args:
            n: the number
        """
        return 2 * n

    for _ in range(3):  # two at a time, as a run with concurrent calls would
        outcomes = await asyncio.gather(stuck.run({}), stuck.run({}), return_exceptions=True)
        assert all(isinstance(o, ToolTimeoutError) for o in outcomes), outcomes
    # Every thread that started a stuck call is set aside; the healthy tool still gets one.
    assert pool.abandoned == len(started) >= 2  # as many as the pool's limit, or more
    result = await asyncio.wait_for(healthy.run({"n": 21}), 5)
    assert result.content == "42"
    assert not release.is_set()
    release.set()
    await until(lambda: pool.abandoned == 0, "the stuck threads to return")
    await until(lambda: pool.threads <= 2, "the extra threads to end")


async def test_past_the_spare_cap_calls_wait_for_a_stuck_thread_to_return(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    pool = small_pool(monkeypatch, limit=1, spare=2)  # three threads at most

    @tool(timeout=0.3)
    def stuck() -> str:
        """Blocks until released."""
        release.wait(10)
        return "late"

    @tool(blocking=True)
    def healthy() -> str:
        """Answers."""
        return "ok"

    with caplog.at_level(logging.WARNING, logger="agentkit"):
        for _ in range(3):  # each on a new thread: the one before is stuck
            with pytest.raises(ToolTimeoutError):
                await stuck.run({})
    assert pool.abandoned == 3 and pool.threads == 3
    assert any("3 sync tool threads are stuck" in r.getMessage() for r in caplog.records)
    waiting = asyncio.create_task(healthy.run({}))
    done, _ = await asyncio.wait({waiting}, timeout=0.1)
    assert not done  # every thread it may use is stuck or running
    release.set()
    assert (await asyncio.wait_for(waiting, 5)).content == "ok"
    await until(lambda: pool.threads <= 1 and pool.busy == 0, "the pool to shrink back")


async def test_an_agent_run_keeps_working_while_earlier_calls_are_stuck(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    small_pool(monkeypatch, limit=2, spare=8)

    @tool(timeout=0.05)
    def fetch(url: str) -> str:
        """Fetches a page.

        Args:
            url: the page
        """
        if url.startswith("slow"):
            release.wait(10)
        return f"page {url}"

    calls = [ToolCall(id=f"s{i}", name="fetch", arguments={"url": f"slow{i}"}) for i in range(4)]
    model = ScriptedModel(
        [calls, ToolCall(id="f", name="fetch", arguments={"url": "fast"}), "done"]
    )
    result = await asyncio.wait_for(Agent(model, [fetch], retries=5).run("go"), 5)
    contents = [m.content for m in result.messages if m.role == "tool"]
    assert contents[:2] == ["tool 'fetch' timed out after 0.05 s"] * 2
    # With two threads, the other two waited: timed out before or after a thread took them.
    assert all(c.startswith("tool 'fetch' timed out after 0.05 s") for c in contents[2:4])
    assert contents[4] == "page fast"
