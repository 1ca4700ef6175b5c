"""Durable runs (agentkit.durable) on SQLite: crashes, recovery, replay, streaming, errors.

Crash tests run ``_durable_app.py`` in subprocesses killed in the middle of a step (os._exit
in a tool, SIGKILL in a model request), then run the same run id again. The in-process tests
share one engine on a SQLite file for this module.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dbos")

from agentkit import (
    Agent,
    ConfigurationError,
    MaxStepsExceeded,
    ModelResponse,
    TextDelta,
    ToolCall,
    ToolContext,
    Usage,
    tool,
)
from agentkit.agent import RunFinished
from agentkit.durable import DurableAgent, DurableSummarizer, launch, shutdown
from agentkit.models.scripted import FunctionModel
from agentkit.patterns.summarize import summarize

APP = Path(__file__).with_name("_durable_app.py")


# --- crashes in subprocesses ------------------------------------------------------------------


def run_app(db: Path, run_id: str, log: Path, crash: str = "") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(APP), f"sqlite:///{db}", run_id, str(log)]
    if crash:
        args.append(crash)
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=db.parent)


def steps_ran(log: Path) -> Counter[str]:
    """How many times each model request / tool call started (keyed without the crash)."""
    lines = log.read_text().splitlines()
    return Counter(" ".join(line.split()[:3]) for line in lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The transcript of run ``trip`` without any crash, in a database of its own."""
    tmp = tmp_path_factory.mktemp("reference")
    done = run_app(tmp / "ref.sqlite", "trip", tmp / "log.txt")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_crash_inside_a_tool_step_reruns_only_that_call(tmp_path: Path, reference: str) -> None:
    db, log = tmp_path / "jobs.sqlite", tmp_path / "log.txt"
    crashed = run_app(db, "trip", log, crash="tool:convert")
    assert crashed.returncode == 3, crashed.stderr  # died inside the tool
    assert "Rome is warmer" not in crashed.stdout

    resumed = run_app(db, "trip", log)
    assert resumed.returncode == 0, resumed.stderr
    ran = steps_ran(log)
    # Every completed step ran once; the one in flight at the crash ran again.
    assert ran == Counter(
        {
            "request 1": 1,
            "tool lookup Paris": 1,
            "tool lookup Rome": 1,
            "request 2": 1,
            "tool convert 24": 2,
            "request 3": 1,
        }
    )
    # ...with the same idempotency key both times.
    keys = {line.split()[-1] for line in log.read_text().splitlines() if "convert" in line}
    assert len(keys) == 1 and keys.pop().startswith("trip:call_")

    # The transcript is whole and the same as a run that never crashed, usage included.
    assert resumed.stdout == reference
    result = json.loads(resumed.stdout)
    assert result["usage"] == {
        "requests": 3,
        "prompt_tokens": 600,
        "completion_tokens": 30,
        "total_tokens": 630,
        "tool_calls": 3,
        "cached_tokens": 0,
    }
    roles = [m["role"] for m in result["messages"]]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


def test_a_crash_inside_a_model_request_resends_only_that_request(
    tmp_path: Path, reference: str
) -> None:
    db, log = tmp_path / "jobs.sqlite", tmp_path / "log.txt"
    crashed = run_app(db, "trip", log, crash="request:3")
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL during the third request

    resumed = run_app(db, "trip", log)
    assert resumed.returncode == 0, resumed.stderr
    assert steps_ran(log) == Counter(
        {
            "request 1": 1,
            "tool lookup Paris": 1,
            "tool lookup Rome": 1,
            "request 2": 1,
            "tool convert 24": 1,
            "request 3": 2,
        }
    )
    assert resumed.stdout == reference
    assert json.loads(resumed.stdout)["usage"]["total_tokens"] == 630


def test_replays_are_byte_identical_in_the_same_and_in_a_fresh_database(
    tmp_path: Path, reference: str
) -> None:
    db, log = tmp_path / "fresh.sqlite", tmp_path / "log.txt"
    first = run_app(db, "trip", log)
    assert first.returncode == 0, first.stderr
    assert first.stdout == reference  # a fresh database: same ids, same transcript
    again = run_app(db, "trip", log)
    assert again.stdout == reference  # the recorded run, read back
    assert steps_ran(log)["request 1"] == 1  # ...without asking the model again


def test_importing_agentkit_does_not_import_dbos() -> None:
    code = (
        "import sys, agentkit, agentkit.agent, agentkit.tools\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dbos', 'sqlalchemy', 'psycopg')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- in this process --------------------------------------------------------------------------

approvals: list[str] = []


async def approve(call: ToolCall) -> bool:
    # The first call waits longest for its approval: without step ids reserved in call order,
    # the second call's steps would be numbered first.
    approvals.append(call.arguments["name"])
    await asyncio.sleep(0.05 if call.arguments["name"] == "first" else 0)
    return True


@tool(requires_approval=True)
async def record(context: ToolContext[Any], name: str) -> str:
    """Record a name."""
    await asyncio.sleep(0.03 if name == "first" else 0)
    return f"recorded {name} for {context.deps['user']}"


def two_calls_then_answer(messages: list[Any], tools: list[Any]) -> ModelResponse:
    if messages[-1].role == "tool":
        return ModelResponse(text="Both recorded.", usage=Usage(total_tokens=7))
    calls = [ToolCall(name="record", arguments={"name": n}) for n in ("first", "second")]
    return ModelResponse(tool_calls=calls, usage=Usage(total_tokens=5))


def always_a_tool(messages: list[Any], tools: list[Any]) -> ModelResponse:
    return ModelResponse(
        tool_calls=[ToolCall(name="record", arguments={"name": "again"})],
        usage=Usage(prompt_tokens=3, total_tokens=4),
    )


parallel = DurableAgent(
    Agent(FunctionModel(two_calls_then_answer), [record], approve=approve), name="parallel"
)
looping = DurableAgent(
    Agent(FunctionModel(always_a_tool), [record], approve=approve, max_steps=2), name="looping"
)


summary_requests: list[str] = []


async def summarize_reply(messages: list[Any], tools: list[Any]) -> ModelResponse:
    prompt = messages[-1].content
    summary_requests.append(prompt)
    part = re.search(r"\(part (\d+) of", prompt)
    tag = f"part {part.group(1)}" if part else "combined"
    # The first chunk's summary comes back last: its step must still come first.
    await asyncio.sleep(0.05 if "(part 1 of" in prompt else 0)
    return ModelResponse(text=f"summary ({tag})", usage=Usage(total_tokens=3))


summarizer = DurableSummarizer(
    FunctionModel(summarize_reply), chunk_tokens=100, fan_in=8, name="notes"
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("engine") / "engine.sqlite"
    launch(f"sqlite:///{db}")
    try:
        yield db
    finally:
        shutdown()


async def test_parallel_calls_are_numbered_in_call_order(engine: Path) -> None:
    from dbos import DBOS

    result = await parallel.run("Record first and second.", run_id="order-1", deps={"user": "ada"})
    assert result.output == "Both recorded."
    assert [m.content for m in result.messages if m.role == "tool"] == [
        "recorded first for ada",
        "recorded second for ada",
    ]
    steps = await DBOS.list_workflow_steps_async("order-1")
    assert [s["function_name"] for s in steps] == [
        "agentkit.model_request",
        "agentkit.approval.record",
        "agentkit.tool.record",
        "agentkit.approval.record",
        "agentkit.tool.record",
        "agentkit.model_request",
    ]
    # The steps of the first call come first, though the second call finished first.
    first_tool = json.loads(json.dumps(steps[2]["output"]))
    assert first_tool["content"] == "recorded first for ada"
    assert result.usage.total_tokens == 12 and result.run_id == "order-1"


async def test_a_finished_run_is_read_back_not_run_again(engine: Path) -> None:
    approvals.clear()
    first = await parallel.run("Record them.", run_id="order-2", deps={"user": "bo"})
    asked = len(approvals)
    again = await parallel.run("Record them.", run_id="order-2", deps={"user": "bo"})
    assert len(approvals) == asked == 2  # no approval asked, no tool run, no request sent
    assert again.to_dict() == first.to_dict()


async def test_streaming_gives_deltas_live_and_none_for_a_replayed_run(engine: Path) -> None:
    live = [e async for e in parallel.stream("Record.", run_id="stream-1", deps={"user": "cy"})]
    deltas = "".join(e.text for e in live if isinstance(e, TextDelta))
    assert deltas == "Both recorded."
    assert isinstance(live[-1], RunFinished) and live[-1].result.output == "Both recorded."

    replayed = [e async for e in parallel.stream("Record.", run_id="stream-1", deps={"user": "cy"})]
    assert not [e for e in replayed if isinstance(e, TextDelta)]
    assert isinstance(replayed[-1], RunFinished)
    assert replayed[-1].result.to_dict() == live[-1].result.to_dict()


async def test_a_failed_run_keeps_its_transcript_and_usage_also_when_read_back(
    engine: Path,
) -> None:
    with pytest.raises(MaxStepsExceeded) as first:
        await looping.run("Loop.", run_id="fail-1", deps={"user": "di"})
    with pytest.raises(MaxStepsExceeded) as again:
        await looping.run("Loop.", run_id="fail-1", deps={"user": "di"})
    for error in (first.value, again.value):
        assert [m.role for m in error.messages] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
        ]
        assert error.usage is not None and error.usage.requests == 2
        assert error.usage.total_tokens == 8
    assert str(again.value) == str(first.value)


async def test_deps_must_be_json(engine: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"deps of a durable run .* JSON"):
        await parallel.run("x", run_id="deps-1", deps=object())


def test_a_durable_agent_made_after_launch_is_refused(engine: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"before agentkit\.durable\.launch"):
        DurableAgent(Agent(FunctionModel(two_calls_then_answer)), name="late")


def test_a_second_process_on_the_same_sqlite_database_is_refused(engine: Path) -> None:
    code = (
        "import sys\n"
        "from agentkit.durable import launch\n"
        "try:\n"
        f"    launch('sqlite:///{engine}')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ConfigurationError")
    assert "SQLite is for one process" in done.stdout and "Postgres" in done.stdout


async def test_a_durable_summary_records_each_request_once_in_call_order(engine: Path) -> None:
    from dbos import DBOS

    text = "\n\n".join(f"Paragraph {i}. " + "words " * 120 for i in range(3))
    summary_requests.clear()
    result = await summarizer.run(text, run_id="summary-1")
    sent = len(summary_requests)
    assert result.summary.startswith("summary (combined") and result.chunks >= 3
    assert result.requests == sent and result.usage.total_tokens == 3 * sent

    again = await summarizer.run(text, run_id="summary-1")
    assert len(summary_requests) == sent  # read back: no request sent again
    assert again == result

    steps = await DBOS.list_workflow_steps_async("summary-1")
    assert [s["function_name"] for s in steps] == ["agentkit.summary_request"] * sent
    # Step i holds chunk i's summary, whatever order the requests were sent and finished in.
    expected = [f"summary (part {i + 1})" for i in range(result.chunks)]
    assert [s["output"]["text"] for s in steps[: result.chunks]] == expected
    assert result.chunk_summaries == expected


async def test_summarize_durable_outside_a_workflow_is_refused(engine: Path) -> None:
    with pytest.raises(ConfigurationError, match="DurableSummarizer"):
        await summarize("some text", FunctionModel(summarize_reply), durable=True)
