"""Tools that misbehave: raise, hang, return huge or unprintable values. The run goes on.

Each failure reaches the model as a tool message it can act on (and, over the wire, as a
string ``content`` the schema accepts); the transcript answers every call once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit.agent import DEFAULT_MAX_TOOL_OUTPUT_CHARS, Agent
from agentkit.errors import ConfigurationError, ToolExecutionError
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import Tool, _workers, tool

PROMPT = "Use the tool."


def echo_results(request: WireRequest) -> Reply:
    """Answer with what the tool messages said (cut short: the model's view, in brief)."""
    results = [m["content"] for m in request.messages if m["role"] == "tool"]
    return Reply.answer(" | ".join(r[:80] for r in results))


async def run_one(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    t: Tool,
    arguments: dict[str, Any] | None = None,
    **agent_options: Any,
) -> tuple[Any, str]:
    """One call to ``t``, then an answer; returns the result and the tool message content."""
    wire.add(Reply.calls((t.name, arguments or {})))
    wire.handler = echo_results
    async with workers_ai(wire) as model:
        result = await Agent(model, [t], **agent_options).run(PROMPT)
    message = result.messages[2]
    assert message.role == "tool"
    sent = next(m for m in wire.requests[1].messages if m["role"] == "tool")["content"]
    assert sent == message.content  # the model saw exactly what the transcript records
    return result, message.content


# --- tools that raise ------------------------------------------------------------------------


class Boom(Exception):
    pass


@tool
def raises_sync(reason: str) -> str:
    """Fails.

    Args:
        reason: why
    """
    raise Boom(f"disk full ({reason})")


@tool
async def raises_async(reason: str) -> str:
    """Fails, asynchronously.

    Args:
        reason: why
    """
    await asyncio.sleep(0)
    raise KeyError(reason)


@pytest.mark.parametrize(
    ("t", "words"),
    [(raises_sync, "Boom: disk full (x)"), (raises_async, "KeyError: 'x'")],
    ids=["sync", "async"],
)
async def test_a_tool_that_raises_is_reported_and_the_run_goes_on(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    t: Tool,
    words: str,
) -> None:
    result, content = await run_one(wire, workers_ai, t, {"reason": "x"})
    assert result.messages[2].is_error
    assert content == f"tool '{t.name}' failed: {words}"
    check_transcript(result.messages, PROMPT, tool_results=1)


async def test_on_tool_error_raise_stops_with_the_original_and_the_transcript(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    wire.add(Reply.calls(("raises_sync", {"reason": "x"})))
    async with workers_ai(wire) as model:
        with pytest.raises(ToolExecutionError) as info:
            await Agent(model, [raises_sync], on_tool_error="raise").run(PROMPT)
    assert isinstance(info.value.original, Boom)
    assert len(wire.requests) == 1
    check_transcript(info.value.messages, PROMPT, open_tail=True)  # resumable
    assert info.value.usage is not None and info.value.usage.tool_calls == 1


# --- tools that hang -------------------------------------------------------------------------


async def test_an_async_tool_that_hangs_times_out(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    @tool(timeout=0.05)
    async def hangs() -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return "never"

    result, content = await run_one(wire, workers_ai, hangs)
    assert content == "tool 'hangs' timed out after 0.05 s" and result.output == content
    assert len(asyncio.all_tasks()) == 1  # nothing of the tool is left running


async def test_a_sync_tool_that_hangs_times_out_and_its_thread_finishes_when_released(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    release, finished = threading.Event(), threading.Event()

    @tool(timeout=0.05)
    def blocks() -> str:
        """Blocks until released."""
        release.wait(10)
        finished.set()
        return "late"

    busy = _workers.busy
    try:
        _result, content = await run_one(wire, workers_ai, blocks)
        assert content == "tool 'blocks' timed out after 0.05 s"
        assert not finished.is_set()  # abandoned, still running
    finally:
        release.set()
    assert finished.wait(5)
    for _ in range(500):  # the worker thread goes back to waiting for work
        if _workers.busy <= busy:
            break
        await asyncio.sleep(0.01)
    assert _workers.busy <= busy
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("agentkit-tool"))


# --- huge outputs -----------------------------------------------------------------------------


@tool
def huge(size: int) -> str:
    """Returns a lot of text.

    Args:
        size: how many characters
    """
    return "x" * size


async def test_huge_output_is_cut_with_a_note_by_default(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    _, content = await run_one(wire, workers_ai, huge, {"size": 1_000_000})
    assert len(content) == DEFAULT_MAX_TOOL_OUTPUT_CHARS
    assert content.endswith(
        f"[output cut: showing the first {DEFAULT_MAX_TOOL_OUTPUT_CHARS} of 1000000 characters]"
    )


async def test_the_cap_is_configurable(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    _, content = await run_one(wire, workers_ai, huge, {"size": 5000}, max_tool_output_chars=500)
    assert len(content) == 500 and content.startswith("x" * 400)
    assert "[output cut: showing the first 500 of 5000 characters]" in content


async def test_output_under_the_cap_is_untouched(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    _, content = await run_one(wire, workers_ai, huge, {"size": 500}, max_tool_output_chars=500)
    assert content == "x" * 500


async def test_huge_error_text_is_cut_too(
    wire: WireServer, workers_ai: Callable[..., WorkersAI]
) -> None:
    @tool
    def loud() -> str:
        """Fails at length."""
        raise ValueError("y" * 100_000)

    _, content = await run_one(wire, workers_ai, loud, max_tool_output_chars=1000)
    assert len(content) == 1000 and content.startswith("tool 'loud' failed: ValueError: yyy")


async def test_a_cap_above_what_the_server_accepts_fails_before_sending(
    wire: WireServer, workers_ai: Callable[..., WorkersAI], check_transcript: Callable[..., None]
) -> None:
    wire.add(Reply.calls(("huge", {"size": 200_000})))
    async with workers_ai(wire) as model:
        agent = Agent(model, [huge], max_tool_output_chars=1_000_000)
        with pytest.raises(ConfigurationError, match="at most 131072") as info:
            await agent.run(PROMPT)
    assert len(wire.requests) == 1  # the oversized body was never sent
    check_transcript(info.value.messages, PROMPT, tool_results=1)


# --- values that are not text ------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Reading(BaseModel):
    value: float
    when: datetime.date


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    return loop


PRINTABLE: list[tuple[str, Callable[[], Any], str]] = [
    ("none", lambda: None, "(no output)"),
    ("int", lambda: 42, "42"),
    ("bytes", lambda: b"caf\xc3\xa9 \xff", "café \ufffd"),
    ("enum", lambda: Colour.RED, "red"),
    ("dataclass", lambda: Point(1, 2), '{"x":1,"y":2}'),
    ("pydantic", lambda: Reading(value=1.5, when=datetime.date(2024, 1, 2)), '{"value":1.5,"when":"2024-01-02"}'),
    ("list-of-objects", lambda: [Opaque()], '["<Opaque>"]'),
    ("nan", lambda: {"v": float("nan")}, '{"v":NaN}'),
    ("datetime", lambda: {"at": datetime.datetime(2024, 1, 2, 3, 4)}, '{"at":"2024-01-02T03:04:00"}'),
    ("object", Opaque, "<Opaque>"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "expected"), PRINTABLE, ids=[p[0] for p in PRINTABLE])
async def test_values_are_turned_into_text(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    name: str,
    make: Callable[[], Any],
    expected: str,
) -> None:
    t = Tool.from_function(lambda: make(), name="produce", description="Produce a value.")
    result, content = await run_one(wire, workers_ai, t)
    assert content == expected and not result.messages[2].is_error


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (circular, "returned a dict that cannot be turned into text"),
        (Unprintable, "returned a Unprintable that cannot be turned into text"),
        (lambda: [1, Unprintable()], "returned a list that cannot be turned into text"),
    ],
    ids=["circular", "str-raises", "nested-str-raises"],
)
async def test_values_that_cannot_be_text_are_a_tool_error_not_a_crash(
    wire: WireServer,
    workers_ai: Callable[..., WorkersAI],
    check_transcript: Callable[..., None],
    make: Callable[[], Any],
    words: str,
) -> None:
    t = Tool.from_function(lambda: make(), name="produce", description="Produce a value.")
    result, content = await run_one(wire, workers_ai, t)
    assert result.messages[2].is_error
    assert content.startswith(f"tool 'produce' {words}") and "return a str" in content
    check_transcript(result.messages, PROMPT, tool_results=1)
