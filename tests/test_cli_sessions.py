"""The command line with sessions (``run``/``chat --session``) and prompt mode (``complete``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _secrets import SECRET_TOKEN

from agentkit import SQLiteSession
from agentkit.testing import Reply, WireServer

AGENT_FILE = textwrap.dedent(
    """
    import time
    from pathlib import Path
    from agentkit.agent import Agent
    from agentkit.messages import ToolCall
    from agentkit.models.scripted import FunctionModel
    from agentkit.tools import tool

    @tool
    def wait(marker: str) -> str:
        '''Wait for a long time.

        Args:
            marker: a file to create first
        '''
        Path(marker).write_text("waiting")
        time.sleep(600)
        return "waited"

    def reply(messages, tools):
        last = messages[-1]
        if last.role == "tool":
            return f"tool said: {last.content[:40]}"
        if last.content.startswith("wait "):
            return ToolCall(name="wait", arguments={"marker": last.content[5:]})
        turns = sum(m.role == "user" for m in messages)
        return f"echo {last.content} (turn {turns})"

    agent = Agent(FunctionModel(reply), [wait])
    """
)


@pytest.fixture
def agent_file(tmp_path: Path) -> str:
    path = tmp_path / "my_agent.py"
    path.write_text(AGENT_FILE)
    return f"{path}:agent"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    return {**base, "PYTHONIOENCODING": "utf-8", **extra}


def agentkit(
    *args: str, stdin: str = "", environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment or env(),
        check=False,
    )


def test_run_with_a_session_continues_the_conversation(agent_file: str, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    first = agentkit("run", agent_file, "hello", "--session", "work", "--session-db", db)
    second = agentkit("run", agent_file, "again", "--session", "work", "--session-db", db)
    other = agentkit("run", agent_file, "hi", "--session", "home", "--session-db", db)
    assert first.returncode == second.returncode == other.returncode == 0, second.stderr
    assert first.stdout == "echo hello (turn 1)\n"
    assert second.stdout == "echo again (turn 2)\n"
    assert other.stdout == "echo hi (turn 1)\n"


def test_chat_with_a_session_resumes_a_saved_conversation(agent_file: str, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    first = agentkit("chat", agent_file, "--session", "me", "--session-db", db, stdin="a\nb\n")
    second = agentkit("chat", agent_file, "--session", "me", "--session-db", db, stdin="c\n")
    assert first.returncode == second.returncode == 0, second.stderr
    assert first.stdout.splitlines() == ["echo a (turn 1)", "echo b (turn 2)"]
    assert second.stdout.splitlines() == ["echo c (turn 3)"]
    assert "4 messages kept" in second.stderr


def test_ctrl_c_in_a_session_run_keeps_every_step(agent_file: str, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "agentkit", "run", agent_file, f"wait {marker}"),
            *("--session", "me", "--session-db", str(db)),
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the tool never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    with SQLiteSession("me", db) as session:
        kept = session.load_sync()
        assert session.holder() is None
    assert [m.role for m in kept] == ["user", "assistant", "tool"]
    assert kept[-1].is_error and "cancelled" in kept[-1].content

    # Without a prompt, the stopped run is finished; then the conversation goes on.
    resumed = agentkit("run", agent_file, "--session", "me", "--session-db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("tool said: The call was cancelled")
    done = agentkit("run", agent_file, "next", "--session", "me", "--session-db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo next (turn 2)\n"


def test_complete_sends_a_prompt_and_streams(wire: WireServer, tmp_path: Path) -> None:
    wire.add("a plain completion", Reply.answer("a streamed completion", chunk_chars=4))
    environment = env(
        CLOUDFLARE_ACCOUNT_ID="acct",
        CLOUDFLARE_API_TOKEN=SECRET_TOKEN,
        CLOUDFLARE_API_BASE_URL=wire.base_url,
    )
    plain = agentkit("complete", "Once upon a time", environment=environment)
    streamed = agentkit(
        "complete",
        "<|begin_of_text|>Once",
        "--raw",
        "--lora",
        "tales",
        "--stream",
        "--max-tokens",
        "50",
        environment=environment,
    )
    assert plain.returncode == streamed.returncode == 0, streamed.stderr
    assert plain.stdout == "a plain completion\n"
    assert streamed.stdout == "a streamed completion\n"
    first, second = (r.body for r in wire.requests)
    assert first["prompt"] == "Once upon a time" and first["stream"] is False
    assert second == {
        "prompt": "<|begin_of_text|>Once",
        "raw": True,
        "lora": "tales",
        "max_tokens": 50,
        "stream": True,
    }
    assert SECRET_TOKEN not in plain.stdout + plain.stderr + streamed.stdout + streamed.stderr


def test_complete_without_credentials_says_what_is_missing() -> None:
    done = agentkit("complete", "hello")
    assert done.returncode == 2
    assert "CLOUDFLARE_ACCOUNT_ID" in done.stderr and "Traceback" not in done.stderr
