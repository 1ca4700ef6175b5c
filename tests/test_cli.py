"""The command line: demo, run (prompt, stdin, --json, --show-tools, --approve), chat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentkit import cli
from agentkit._demo import calculate, convert_units

AGENT_FILE = textwrap.dedent(
    """
    from agentkit.agent import Agent
    from agentkit.messages import Message, ToolCall
    from agentkit.testing import FunctionModel
    from agentkit.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        '''Add.

        Args:
            a: first
            b: second
        '''
        return a + b

    def reply(messages, tools):
        last = messages[-1]
        if last.role == "tool":
            return f"result: {last.content}"
        if last.content.startswith("add"):
            return ToolCall(name="add", arguments={"a": 2, "b": 40})
        turns = sum(m.role == "user" for m in messages)
        return f"echo {last.content} (turn {turns})"

    agent = Agent(FunctionModel(reply), [add])
    """
)


@pytest.fixture
def agent_file(tmp_path: Path) -> str:
    path = tmp_path / "my_agent.py"
    path.write_text(AGENT_FILE)
    return f"{path}:agent"


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def agentkit(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=offline_env(),
        check=False,
    )


def test_demo_runs_offline_with_real_tool_results() -> None:
    done = agentkit("demo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum("scripted model" in line for line in lines) == 1
    grams = convert_units(2.5, "lb", "g")
    assert "→ convert_units(value=2.5, from_unit='lb', to_unit='g')" in done.stdout
    assert f"← {grams}" in done.stdout
    missing = calculate(f"{grams} - 800")
    assert f"← {missing}" in done.stdout
    assert f"about {missing:.0f} g more" in done.stdout


def test_calculator_is_safe_and_explains_what_it_accepts() -> None:
    assert calculate("(2 + 3) * 4 ** 2 / 8") == 10.0
    assert calculate("sqrt(16) + abs(-1)") == 5.0
    for bad in ["__import__('os').system('true')", "open('x')", "2 ** 1000", "1 / 0", "x + 1"]:
        with pytest.raises(ValueError):
            calculate(bad)
    assert convert_units(100, "C", "F") == 212.0
    with pytest.raises(ValueError, match="cannot convert mass"):
        convert_units(1, "kg", "m")


def test_run_prints_the_answer(agent_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", agent_file, "add please", "--show-tools"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "result: 42\n"
    assert "→ add(a=2, b=40)" in captured.err and "← 42" in captured.err


def test_run_reads_stdin_and_prints_json(agent_file: str) -> None:
    done = agentkit("run", agent_file, "--json", stdin="hello from a pipe\n")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["output"] == "echo hello from a pipe (turn 1)"
    assert data["steps"] == 1 and data["usage"]["requests"] == 1
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]


def test_run_streams(agent_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", agent_file, "a longer prompt to stream back", "--stream"]) == 0
    assert capsys.readouterr().out == "echo a longer prompt to stream back (turn 1)\n"


def test_run_approve_asks_before_each_call(
    agent_file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    questions: list[str] = []

    def refuse(question: str) -> bool:
        questions.append(question)
        return False

    monkeypatch.setattr(cli, "_ask_terminal", refuse)
    assert cli.main(["run", agent_file, "add it", "--approve"]) == 0
    assert questions == ["run add(a=2, b=40)? [y/N] "]
    assert "not approve" in capsys.readouterr().out


def test_run_reports_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "missing.py"), "hi"]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('bad import')\n")
    assert cli.main(["run", f"{broken}:agent", "hi"]) == 2
    assert "bad import" in capsys.readouterr().err


def test_chat_keeps_the_history(agent_file: str) -> None:
    done = agentkit("chat", agent_file, stdin="first\nsecond\n/exit\nnever read\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["echo first (turn 1)", "echo second (turn 2)"]


def test_ctrl_c_exits_130_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_demo", interrupted)
    assert cli.main(["demo"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_every_command_is_registered() -> None:
    parser = cli.build_parser()
    help_text = parser.format_help()
    for name in ("demo", "run", "chat", "batch"):
        assert name in help_text
