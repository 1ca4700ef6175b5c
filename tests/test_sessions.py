"""Sessions: a conversation kept between runs, saved after every step, one run at a time."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import (
    Agent,
    ConfigurationError,
    MemorySession,
    Message,
    ModelConnectionError,
    RunFinished,
    Session,
    SessionBusyError,
    SQLiteSession,
    ToolCall,
    ToolCallStarted,
)
from agentkit.models.scripted import FunctionModel, ScriptedModel
from agentkit.sessions import _this_host, estimate_tokens, trim_messages
from agentkit.testing import WireServer
from agentkit.tools import tool

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chats.db"


@pytest.fixture
def session(db: Path) -> Iterator[SQLiteSession]:
    with SQLiteSession("alice", db) as s:
        yield s


def sql(db: Path, statement: str, *params: Any) -> list[Any]:
    """One statement on the file through a connection of its own."""
    raw = sqlite3.connect(db)
    try:
        with raw:
            return raw.execute(statement, params).fetchall()
    finally:
        raw.close()


def stored(db: Path, session_id: str = "alice") -> list[Message]:
    """The conversation as another connection (another process, say) reads it."""
    with SQLiteSession(session_id, db) as reader:
        return reader.load_sync()


@tool
def lookup(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city
    """
    return f"sunny in {city}"


# --- continuing a conversation ---------------------------------------------------------------


async def test_a_later_run_continues_the_conversation(session: SQLiteSession, db: Path) -> None:
    model = ScriptedModel([ToolCall(name="lookup", arguments={"city": "Paris"}), "Sunny.", "Yes."])
    agent = Agent(model, [lookup], system_prompt="Be brief.")

    first = await agent.run("Weather in Paris?", session=session)
    assert first.output == "Sunny."
    second = await agent.run("Is that warm?", session=session)

    assert second.output == "Yes."
    sent = model.requests[2].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[0].content == "Be brief."
    assert sent[1].content == "Weather in Paris?" and sent[-1].content == "Is that warm?"
    # The store holds the conversation, not the agent's system prompt (that belongs to the agent).
    kept = stored(db)
    assert [m.role for m in kept] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert kept == second.messages[1:]
    assert second.new_messages == kept[4:]


async def test_the_store_keeps_every_field_of_a_message(session: SQLiteSession, db: Path) -> None:
    call = ToolCall(id="c1", name="lookup", arguments={"city": "Köln", "n": [1, {"x": None}]})
    history = [
        Message.user("hi"),
        Message.assistant("let me see", [call]),
        Message(role="tool", content="boom", tool_call_id="c1", name="lookup", is_error=True),
    ]
    await session.append(history)
    assert stored(db) == history


async def test_sessions_in_one_file_are_separate(db: Path) -> None:
    agent = Agent(ScriptedModel(["one", "two"]))
    with SQLiteSession("a", db) as a, SQLiteSession("b", db) as b:
        await agent.run("first", session=a)
        await agent.run("second", session=b)
        assert [m.content for m in await a.load()] == ["first", "one"]
        assert [m.content for m in await b.load()] == ["second", "two"]
        await a.clear()
        assert await a.load() == []
        assert len(await b.load()) == 2


# --- saved after every step ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_every_step_is_stored_before_the_next_begins(db: Path, stream: bool) -> None:
    seen_by_tool: list[list[str]] = []
    seen_by_model: list[list[str]] = []

    @tool
    def check(item: str) -> str:
        """Check an item.

        Args:
            item: the item
        """
        seen_by_tool.append([m.role for m in stored(db)])
        return "ok"

    def reply(messages: list[Message], tools: list[Any]) -> Any:
        seen_by_model.append([m.role for m in stored(db)])
        if len(seen_by_model) == 1:
            return [ToolCall(name="check", arguments={"item": "a"})]
        return "done"

    agent = Agent(FunctionModel(reply), [check])
    with SQLiteSession("alice", db) as session:
        if stream:
            async for _ in agent.stream("go", session=session):
                pass
        else:
            await agent.run("go", session=session)

    # The prompt is stored before the first request; the tool step before its calls run;
    # its results before the next request.
    assert seen_by_model == [["user"], ["user", "assistant", "tool"]]
    assert seen_by_tool == [["user", "assistant"]]
    assert [m.role for m in stored(db)] == ["user", "assistant", "tool", "assistant"]


async def test_a_failed_run_keeps_its_steps_and_the_next_run_resumes(db: Path) -> None:
    model = ScriptedModel(
        [
            ToolCall(name="lookup", arguments={"city": "Oslo"}),
            ModelConnectionError("the network went away"),
            "Sunny in Oslo.",
        ]
    )
    agent = Agent(model, [lookup])
    with SQLiteSession("alice", db) as session:
        with pytest.raises(ModelConnectionError):
            await agent.run("Weather in Oslo?", session=session)
        assert [m.role for m in stored(db)] == ["user", "assistant", "tool"]

        result = await agent.run(session=session)  # no prompt: carry on from the store
    assert result.output == "Sunny in Oslo."
    assert [m.role for m in stored(db)] == ["user", "assistant", "tool", "assistant"]


async def test_a_cancelled_run_keeps_a_valid_transcript(
    db: Path, check_transcript: Callable[..., None]
) -> None:
    started = asyncio.Event()

    @tool
    async def wait(seconds: int) -> str:
        """Wait.

        Args:
            seconds: how long
        """
        started.set()
        await asyncio.sleep(seconds)
        return "waited"

    model = ScriptedModel([ToolCall(name="wait", arguments={"seconds": 60}), "ok"])
    with SQLiteSession("alice", db) as session:
        task = asyncio.create_task(Agent(model, [wait]).run("wait a minute", session=session))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        kept = stored(db)
        check_transcript(kept, "wait a minute", tool_results=1)
        assert "cancelled" in kept[-1].content
        assert (await Agent(model, [wait]).run(session=session)).output == "ok"


async def test_resuming_with_nothing_to_finish_is_an_error(session: SQLiteSession) -> None:
    agent = Agent(ScriptedModel(["hello"]))
    with pytest.raises(ConfigurationError, match="nothing to run: session 'alice' is empty"):
        await agent.run(session=session)
    await agent.run("hi", session=session)
    with pytest.raises(ConfigurationError, match=r"'alice' ends with an answer.*pass a prompt"):
        await agent.run(session=session)
    # ... and neither refusal kept the session locked.
    assert session.holder() is None
    assert len(await session.load()) == 2


# --- one run at a time -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_a_second_concurrent_run_is_refused(db: Path, kind: str) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    @tool
    async def slow() -> str:
        """Take a while."""
        inside.set()
        await release.wait()
        return "done"

    session: Session = SQLiteSession("alice", db) if kind == "sqlite" else MemorySession("alice")
    model = ScriptedModel([ToolCall(name="slow"), "first answer", "second answer"])
    agent = Agent(model, [slow])
    first = asyncio.create_task(agent.run("first", session=session))
    await inside.wait()

    with pytest.raises(SessionBusyError, match="in use by run") as refused:
        await agent.run("second", session=session)
    assert "refused" in str(refused.value)

    release.set()
    assert (await first).output == "first answer"
    # The refused run wrote nothing; once the first is done the session is free again.
    assert next(m.content for m in await session.load()) == "first"
    assert "second" not in [m.content for m in await session.load()]
    assert (await agent.run("second", session=session)).output == "second answer"


async def test_a_run_cancelled_while_taking_the_lock_does_not_keep_it(
    session: SQLiteSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, proceed, taken = threading.Event(), threading.Event(), threading.Event()
    acquire = SQLiteSession._acquire

    def slow_acquire(self: SQLiteSession, run_id: str) -> None:
        entered.set()
        proceed.wait(30)
        acquire(self, run_id)
        taken.set()

    monkeypatch.setattr(SQLiteSession, "_acquire", slow_acquire)
    task = asyncio.create_task(Agent(ScriptedModel(["never"])).run("hi", session=session))
    await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    proceed.set()  # the lock is taken now, by a run that no longer exists ...
    await asyncio.to_thread(taken.wait, 30)
    monkeypatch.setattr(SQLiteSession, "_acquire", acquire)
    for _ in range(200):  # ... and given back as soon as it is
        if session.holder() is None:
            break
        await asyncio.sleep(0.01)
    assert session.holder() is None
    assert (await Agent(ScriptedModel(["hello"])).run("hi", session=session)).output == "hello"


def test_a_lock_held_on_another_host_is_respected_until_broken(
    session: SQLiteSession, db: Path
) -> None:
    session.load_sync()  # creates the tables
    sql(db, "INSERT INTO agentkit_session_locks VALUES ('alice', 'r1', 4242, 'elsewhere', NULL, 0)")
    agent = Agent(ScriptedModel(["hi"]))
    with pytest.raises(SessionBusyError, match=r"pid 4242 on elsewhere.*break_lock"):
        agent.run_sync("hello", session=session)
    session.break_lock()
    assert agent.run_sync("hello", session=session).output == "hi"


def test_a_lock_whose_pid_was_reused_is_taken_over(
    session: SQLiteSession, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The parent process is alive, but it is not the process that took this lock.
    session.load_sync()
    sql(
        db,
        "INSERT INTO agentkit_session_locks VALUES ('alice', 'r1', ?, ?, 'not-its-start', 0)",
        os.getppid(),
        _this_host(),
    )
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        assert Agent(ScriptedModel(["hi"])).run_sync("hello", session=session).output == "hi"
    assert "no longer runs" in caplog.text


def test_session_and_history_together_are_refused(session: SQLiteSession) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Agent(ScriptedModel(["x"])).run_sync(
            "hi", session=session, message_history=[Message.user("a")]
        )
    with pytest.raises(ConfigurationError, match=r"agentkit\.Session"):
        Agent(ScriptedModel(["x"])).run_sync("hi", session="alice")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": "a", "max_messages": 0}, "max_messages"),
        ({"session_id": "a", "max_input_tokens": -5}, "max_input_tokens"),
        ({"session_id": "a", "synchronous": "OFF"}, "synchronous"),
    ],
)
def test_bad_session_arguments_are_rejected(
    kwargs: dict[str, Any], match: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        SQLiteSession(path=tmp_path / "x.db", **kwargs)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(session: SQLiteSession, db: Path) -> None:
    session.append_sync([Message.user("from the parent")])
    pid = os.fork()
    if pid == 0:  # the child: the same object, a new process
        try:
            inherited = session._db  # SQLite forbids using a connection across fork()
            session.append_sync([Message.user("from the child")])
            os._exit(0 if session._db is not inherited else 3)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    session.append_sync([Message.user("parent again")])
    assert [m.content for m in stored(db)] == ["from the parent", "from the child", "parent again"]


def test_full_synchronous_mode_is_applied(db: Path) -> None:
    with SQLiteSession("a", db, synchronous="FULL") as session:
        session.load_sync()
        assert session._connect().execute("PRAGMA synchronous").fetchone() == (2,)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(ConfigurationError, match=r"cannot use .*notes\.txt.* as a session file"):
        SQLiteSession("a", path).load_sync()


# --- what the model is sent ----------------------------------------------------------------


async def test_max_messages_bounds_what_is_sent_and_the_store_keeps_all(db: Path) -> None:
    model = ScriptedModel([f"answer {i}" for i in range(6)])
    agent = Agent(model, system_prompt="Be brief.")
    with SQLiteSession("alice", db, max_messages=3) as session:
        for i in range(6):
            await agent.run(f"question {i}", session=session)
    sent = model.requests[-1].messages
    assert [m.content for m in sent] == ["Be brief.", "question 4", "answer 4", "question 5"]
    assert len(stored(db)) == 12


async def test_a_tool_step_is_never_cut_from_its_results(db: Path) -> None:
    calls = [ToolCall(name="lookup", arguments={"city": c}) for c in ("A", "B", "C")]
    model = ScriptedModel([calls, "done"])
    with SQLiteSession("alice", db, max_messages=2) as session:
        await Agent(model, [lookup]).run("three cities", session=session)
    # The last turn (an assistant step and its three results) is sent whole, over the bound,
    # and so is the request it works on.
    sent = model.requests[-1].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool", "tool", "tool"]


async def test_the_request_stays_in_view_during_a_long_run(db: Path) -> None:
    steps = [ToolCall(name="lookup", arguments={"city": c}) for c in "ABCD"]
    model = ScriptedModel(["earlier answer", *steps, "done"])
    agent = Agent(model, [lookup], system_prompt="Be brief.")
    with SQLiteSession("alice", db, max_messages=3) as session:
        await agent.run("an earlier question", session=session)
        await agent.run("Weather in A, B, C and D?", session=session)
    sent = model.requests[-1].messages
    assert [(m.role, m.content[:9]) for m in sent] == [
        ("system", "Be brief."),
        ("user", "Weather i"),
        ("assistant", ""),
        ("tool", "sunny in "),
    ]
    assert sent[-1].content == "sunny in D"


async def test_a_token_budget_bounds_what_is_sent(db: Path) -> None:
    model = ScriptedModel([f"answer {i} " + "words " * 40 for i in range(8)])
    agent = Agent(model, system_prompt="Be brief.")
    with SQLiteSession("alice", db, max_input_tokens=200) as session:
        for i in range(8):
            await agent.run(f"question {i} " + "context " * 40, session=session)
    sent = model.requests[-1].messages
    assert sent[0].content == "Be brief." and sent[-1].content.startswith("question 7")
    assert sum(estimate_tokens(m) for m in sent) <= 200
    assert len(sent) < 15 and len(stored(db)) == 16


# --- trimming, as properties ---------------------------------------------------------------


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages = [Message.system("rules")] * draw(st.integers(0, 2))
    for n in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["user", "answer", "tools"]))
        text = "x" * draw(st.integers(0, 80))
        if kind == "user":
            messages.append(Message.user(text))
        elif kind == "answer":
            messages.append(Message.assistant(text))
        else:
            count = draw(st.integers(1, 4))
            calls = [
                ToolCall(id=f"c{n}_{i}", name="t", arguments={"q": text}) for i in range(count)
            ]
            messages.append(Message.assistant("", calls))
            messages.extend(
                Message(role="tool", content=text, tool_call_id=c.id, name="t") for c in calls
            )
    return messages


@given(
    conversations(),
    st.one_of(st.none(), st.integers(1, 10)),
    st.one_of(st.none(), st.integers(1, 400)),
)
def test_trimming_keeps_the_system_prompt_the_request_and_whole_turns(
    messages: list[Message], max_messages: int | None, max_tokens: int | None
) -> None:
    kept = trim_messages(messages, max_messages=max_messages, max_input_tokens=max_tokens)
    if max_messages is None and max_tokens is None:
        assert kept == messages
    head = [m for m in messages if m.role == "system"]
    body = messages[len(head) :]
    assert kept[: len(head)] == head, "the system prompt is kept"
    sent = kept[len(head) :]
    users = [i for i, m in enumerate(body) if m.role == "user"]
    latest = max((i for i, m in enumerate(body) if m.role != "tool"), default=0)

    # What is sent is the end of the conversation, or the last user message (the request
    # being worked on) followed by the end of what came after it.
    if sent == body[len(body) - len(sent) :]:
        pinned = False
        suffix_start = len(body) - len(sent)
    else:
        pinned = True
        suffix_start = len(body) - len(sent) + 1
        assert users and sent[0] is body[users[-1]] and suffix_start > users[-1] + 1
        assert sent[1:] == body[suffix_start:]
    if body:
        assert body[latest] in sent, "the latest turn is always sent"
    if users:
        assert any(m is body[users[-1]] for m in sent), "the request is always sent"
    # No tool result is sent without the call it answers.
    sent_calls = {c.id for m in sent for c in m.tool_calls}
    assert all(m.tool_call_id in sent_calls for m in sent if m.role == "tool")
    # Within the bounds, unless what must be sent (the latest turn, the request) is over them.
    must = len(body) - latest + (1 if users and users[-1] < latest else 0)
    if len(sent) > must:
        if max_messages is not None:
            assert len(sent) <= max_messages
        if max_tokens is not None:
            assert sum(estimate_tokens(m) for m in kept) <= max_tokens
    # Nothing more could have been sent: the whole turn before the cut would break a bound.
    if suffix_start > 0 and len(sent) < len(body):
        first = suffix_start - 1
        while first > 0 and body[first].role == "tool":
            first -= 1
        wider = ([body[users[-1]]] if pinned else []) + body[first:]
        too_many = max_messages is not None and len(wider) > max_messages
        too_long = (
            max_tokens is not None and sum(estimate_tokens(m) for m in [*head, *wider]) > max_tokens
        )
        assert too_many or too_long


# --- several processes on one file ---------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentkit import Agent, SessionBusyError, SQLiteSession, ToolCall
    from agentkit.models.scripted import FunctionModel
    from agentkit.tools import tool

    path, session_id, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    @tool
    def step(n: int) -> str:
        '''Do one step.

        Args:
            n: the step number
        '''
        if mode == "hang":
            Path(path + ".ready").write_text("ready")
            time.sleep(600)
        return f"step {n} done"

    def reply(messages, tools):
        last_user = max(i for i, m in enumerate(messages) if m.role == "user")
        done = sum(1 for m in messages[last_user:] if m.role == "tool")
        if done < 3:
            return ToolCall(name="step", arguments={"n": done + 1})
        return f"{session_id}: {messages[last_user].content} done"

    agent = Agent(FunctionModel(reply), [step])
    with SQLiteSession(session_id, path) as session:
        if mode == "contend":  # several workers on one session: each run is whole or refused
            done = 0
            for i in range(20):
                try:
                    agent.run_sync(f"round {i} of {sys.argv[4]}", session=session)
                    done += 1
                except SessionBusyError:
                    time.sleep(0.001)
            print(done)
        else:
            rounds = 1 if mode == "hang" else 5
            for i in range(rounds):
                agent.run_sync(f"round {i}", session=session)
    """
)


def _worker(
    tmp_path: Path, db: Path, session_id: str, mode: str, name: str = ""
) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), str(db), session_id, mode, name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_several_processes_share_one_file(tmp_path: Path, db: Path) -> None:
    workers = [_worker(tmp_path, db, f"user{i}", "run") for i in range(4)]
    for proc in workers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    for i in range(4):
        kept = stored(db, f"user{i}")
        # 5 rounds of: prompt, 3 x (tool step, result), answer; in order, nothing interleaved.
        assert len(kept) == 5 * 8
        for r in range(5):
            turn = kept[r * 8 : (r + 1) * 8]
            assert turn[0].content == f"round {r}"
            assert turn[-1].content == f"user{i}: round {r} done"
            assert [m.role for m in turn] == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]
    assert sql(db, "PRAGMA journal_mode") == [("wal",)]
    assert sql(db, "SELECT COUNT(*) FROM agentkit_session_locks") == [(0,)]


def test_processes_on_one_session_never_interleave_their_runs(tmp_path: Path, db: Path) -> None:
    workers = [_worker(tmp_path, db, "shared", "contend", f"w{i}") for i in range(3)]
    finished = 0
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        finished += int(out)
    kept = stored(db, "shared")
    assert finished >= 1 and len(kept) == 8 * finished
    for r in range(finished):
        run = kept[r * 8 : (r + 1) * 8]
        assert [m.role for m in run] == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]
        assert run[-1].content == f"shared: {run[0].content} done"
        assert [m.content for m in run[2:7:2]] == ["step 1 done", "step 2 done", "step 3 done"]


def test_a_killed_process_loses_nothing_and_its_lock_does_not_block(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = _worker(tmp_path, db, "alice", "hang")
    try:
        ready = Path(f"{db}.ready")
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the worker never reached its tool"
            time.sleep(0.05)

        # While it runs, a second run on the same session is refused, naming the holder.
        session = SQLiteSession("alice", db)
        agent = Agent(ScriptedModel(["never"]), [lookup])
        with pytest.raises(SessionBusyError, match=f"pid {proc.pid}"):
            agent.run_sync("me too", session=session)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

    # Its prompt and the tool step it was running were saved before it died.
    kept = session.load_sync()
    assert [m.role for m in kept] == ["user", "assistant"]
    assert kept[1].tool_calls[0].name == "step"

    @tool
    def step(n: int) -> str:
        """Do one step.

        Args:
            n: the step number
        """
        return f"step {n} done again"

    def reply(messages: list[Message], tools: list[Any]) -> Any:
        done = sum(1 for m in messages if m.role == "tool")
        return ToolCall(name="step", arguments={"n": done + 1}) if done < 3 else "resumed"

    with caplog.at_level(logging.WARNING, logger="agentkit"):
        result = Agent(FunctionModel(reply), [step]).run_sync(session=session)
    assert result.output == "resumed"
    assert "no longer runs" in caplog.text and f"pid {proc.pid}" in caplog.text
    kept = session.load_sync()
    assert [m.role for m in kept] == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]
    assert kept[2].content == "step 1 done again"  # the call it died in ran, once
    session.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_holder_not_yet_reaped_does_not_block(tmp_path: Path, db: Path) -> None:
    proc = _worker(tmp_path, db, "alice", "hang")
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{db}.ready").exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the worker never reached its tool"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        # Not waited for: the process is a zombie, which signal 0 still finds.
        deadline = time.monotonic() + 30
        while "Z" not in Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2][:3]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with SQLiteSession("alice", db) as session:
            result = Agent(ScriptedModel(["step 1 skipped", "done"]), []).run_sync(session=session)
        assert result.output == "step 1 skipped"  # the dead run's call was answered, then asked
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_a_run_waits_for_its_turn_after_a_refusal(session: SQLiteSession) -> None:
    # Refused runs leave nothing behind: the session is usable at once afterwards.
    agent = Agent(ScriptedModel(["a", "b"]))

    async def both() -> list[Any]:
        return await asyncio.gather(
            agent.run("one", session=session),
            agent.run("two", session=session),
            return_exceptions=True,
        )

    outcomes = asyncio.run(both())
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, SessionBusyError)]
    assert len(finished) + len(refused) == 2 and finished
    kept = session.load_sync()
    assert len(kept) == 2 * len(finished)
    assert session.holder() is None


def test_stream_sync_with_a_session_saves_when_the_caller_stops_early(
    session: SQLiteSession,
) -> None:
    model = ScriptedModel([ToolCall(name="lookup", arguments={"city": "Rome"}), "Sunny."])
    agent = Agent(model, [lookup])
    for event in agent.stream_sync("Weather in Rome?", session=session):
        if isinstance(event, ToolCallStarted):
            break
    # Leaving the loop closed the run: the call is answered as cancelled and the lock is free.
    kept = session.load_sync()
    assert [m.role for m in kept] == ["user", "assistant", "tool"]
    assert kept[-1].is_error
    assert session.holder() is None
    events = list(agent.stream_sync(session=session))
    assert isinstance(events[-1], RunFinished) and events[-1].result.output == "Sunny."


# --- one prompt cache per conversation ---------------------------------------------------------


async def test_the_runs_of_a_session_share_one_affinity_key(
    db: Path, wire: WireServer, workers_ai: Callable[..., Any]
) -> None:
    wire.add("first", "second", "elsewhere")
    async with workers_ai(wire) as model:
        agent = Agent(model)
        with SQLiteSession("alice@example.com", db) as session:
            await agent.run("one", session=session)
            await agent.run("two", session=session)
        await agent.run("three")
    keys = [r.headers.get("x-session-affinity") for r in wire.requests]
    assert keys[0] == keys[1] and keys[0] and keys[2] and keys[2] != keys[0]
    assert "alice" not in keys[0]  # a hash of the session id, not the id
