"""The command line: demo, run (prompt, stdin, --json, --show-tools, --approve), chat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentkit import cli
from agentkit._demo import DEMO_PROMPT, calculate, convert_units

AGENT_FILE = textwrap.dedent(
    """
    from agentkit.agent import Agent
    from agentkit.errors import ModelError
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
        if last.content == "fail":
            raise ModelError("the model is down")
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


ACCEPTED = r"use numbers, \+ - \* / // % \*\*, parentheses and sqrt, abs, round, min, max"


@pytest.mark.parametrize(
    ("bad", "explained"),
    [
        (
            "__import__('os').system('true')",
            rf"unsupported expression part .*__import__.*; {ACCEPTED}",
        ),
        ("open('x')", rf"unsupported expression part .*open\('x'\).*; {ACCEPTED}"),
        ("x + 1", rf"unsupported expression part 'x'; {ACCEPTED}"),
        ("2 ** 1000", r"exponent too large: keep powers small \(exponent at most 100\)"),
        ("1 / 0", r"division by zero"),
        ("2 +", r"not a valid expression: invalid syntax"),
        ("1" * 501, r"expression too long \(at most 500 characters\)"),
    ],
)
def test_calculator_refuses_and_explains_what_it_accepts(bad: str, explained: str) -> None:
    with pytest.raises(ValueError, match=f"^{explained}$"):
        calculate(bad)


def test_calculator_and_converter_answer() -> None:
    assert calculate("(2 + 3) * 4 ** 2 / 8") == 10.0
    assert calculate("sqrt(16) + abs(-1)") == 5.0
    assert convert_units(100, "C", "F") == 212.0
    with pytest.raises(ValueError, match=r"^cannot convert mass \(kg\) to length \(m\)$"):
        convert_units(1, "kg", "m")
    with pytest.raises(
        ValueError, match=r"^unknown unit 'parsec'; known units: km, m, .*, C, F, K$"
    ):
        convert_units(1, "parsec", "m")


def test_demo_says_the_offline_demo_answers_its_own_question() -> None:
    done = agentkit("demo", "How far is the moon?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == (
        "The offline demo answers its own question, not yours; set both variables to ask "
        "your question on Workers AI."
    )
    assert f"question: {DEMO_PROMPT}" in lines
    assert "moon" not in done.stdout
    assert "answers its own question" not in agentkit("demo").stdout


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


def test_a_failed_run_with_json_prints_its_transcript(agent_file: str) -> None:
    done = agentkit("run", agent_file, "fail", "--json")
    assert done.returncode == 1
    assert done.stderr == "agentkit run: ModelError: the model is down\n"
    data = json.loads(done.stdout)
    assert (data["output"], data["interrupted"]) == (None, False)
    assert data["error"] == {"type": "ModelError", "message": "the model is down"}
    assert data["messages"] == [{"role": "user", "content": "fail"}]


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


def test_a_file_that_fails_to_import_shows_where(tmp_path: Path) -> None:
    helper = tmp_path / "settings_helper.py"
    helper.write_text("def read():\n    return missing_name\n")
    failing = tmp_path / "failing.py"
    failing.write_text("import settings_helper\n\nSETTINGS = settings_helper.read()\n")
    done = agentkit("run", f"{failing}:agent", "hi")
    assert done.returncode == 2
    err = done.stderr
    assert err.startswith(
        f"agentkit run: cannot load '{failing}:agent': running '{failing}' raised NameError: "
        "name 'missing_name' is not defined\n"
    )
    # Both frames of the user's code, outermost first, with their lines; no import machinery.
    assert f'File "{failing}", line 3, in <module>\n    SETTINGS = settings_helper.read()' in err
    assert f'File "{helper}", line 2, in read\n    return missing_name' in err
    assert "importlib" not in err and "Traceback" not in err

    typo = tmp_path / "typo.py"
    typo.write_text("from agentkit import Agent\n\nagent = Agent(\n")
    done = agentkit("run", f"{typo}:agent", "hi")
    assert done.returncode == 2
    assert f'File "{typo}", line 3' in done.stderr and "agent = Agent(" in done.stderr
    assert "raised SyntaxError: '(' was never closed" in done.stderr


def test_the_command_line_explains_what_it_accepts(agent_file: str, tmp_path: Path) -> None:
    done = agentkit("run", agent_file, stdin="  \n")
    assert (done.returncode, done.stderr) == (
        2,
        "agentkit run: no prompt: the text piped on stdin was empty\n",
    )
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"a"\n')
    out = str(tmp_path / "out.jsonl")
    done = agentkit("batch", agent_file, str(inputs), "-o", out, "--concurrency", "0")
    assert (done.returncode, done.stderr) == (
        2,
        "agentkit batch: concurrency must be at least 1, got 0\n",
    )
    inputs.write_text('{"text": "a"}\n')
    done = agentkit("batch", agent_file, str(inputs), "-o", out)
    assert done.returncode == 2
    assert done.stderr == (
        "agentkit batch: in.jsonl line 1: an input object needs an 'input' (or 'prompt') "
        "string, got keys ['text']\n"
    )


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


SLOW_AGENT = textwrap.dedent(
    """
    import asyncio, os
    from pathlib import Path

    from agentkit.agent import Agent
    from agentkit.messages import ToolCall
    from agentkit.testing import FunctionModel
    from agentkit.tools import tool

    MARK = Path(os.environ["MARK_FILE"])

    @tool
    async def lookup(city: str) -> str:
        '''Look a city up.

        Args:
            city: the city
        '''
        if city == "Lyon":
            MARK.touch()
            await asyncio.sleep(3600)  # interrupted here
        return f"{city}: sunny"

    def reply(messages, tools):
        done = [m for m in messages if m.role == "tool"]
        city = "Paris" if not done else "Lyon"
        return ToolCall(id=f"call-{city}", name="lookup", arguments={"city": city})

    agent = Agent(FunctionModel(reply), [lookup])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_ctrl_c_prints_the_transcript_so_far(tmp_path: Path, as_json: bool) -> None:
    path = tmp_path / "slow_agent.py"
    path.write_text(SLOW_AGENT)
    mark = tmp_path / "mark"
    env = {**offline_env(), "MARK_FILE": str(mark)}
    command = [sys.executable, "-m", "agentkit", "run", f"{path}:agent", "weather?"]
    process = subprocess.Popen(
        [*command, *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30  # a bound on the wait, not a timing assert
        while not mark.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never reached the slow tool"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert err == "\nagentkit run: interrupted\n"
    if as_json:
        data = json.loads(out)
        assert (data["output"], data["interrupted"]) == (None, True)
        assert data["error"] == {"type": "KeyboardInterrupt", "message": "interrupted"}
        assert data["usage"]["requests"] == 2
        assert [(m["role"], m.get("content", "")) for m in data["messages"]] == [
            ("user", "weather?"),
            ("assistant", ""),
            ("tool", "Paris: sunny"),
            ("assistant", ""),
            ("tool", "The call was cancelled before it finished; there is no result."),
        ]
        assert data["messages"][3]["tool_calls"][0]["arguments"] == {"city": "Lyon"}
    else:
        assert out.splitlines() == [
            "",
            "[interrupted after 2 model requests; the transcript so far:]",
            "user: weather?",
            "  → lookup(city='Paris')",
            "  ← lookup: Paris: sunny",
            "  → lookup(city='Lyon')",
            "  ✗ lookup: The call was cancelled before it finished; there is no result.",
        ]
