"""Jobs (``agentkit.jobs`` and ``agentkit batch``): the input format, one process per output
file, what a resume says and notices, and how the command line tells a user to continue."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit import ConfigurationError, Message
from agentkit.agent import Agent
from agentkit.jobs import (
    OutputLock,
    OutputLockedError,
    read_inputs,
    read_results,
    run_batch,
)
from agentkit.testing import FunctionModel

# Characters str.splitlines() treats as line ends. The first three are valid raw in JSON strings;
# the control characters are escaped by careful writers but left raw by some, and both are read.
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"]


def echo(messages: list[Message], tools: list[Any]) -> str:
    return messages[-1].content


async def test_inputs_may_hold_any_character_json_allows_raw(tmp_path: Path) -> None:
    texts = [f"before{sep}after" for sep in SEPARATORS]
    inputs = tmp_path / "in.jsonl"
    # Each separator written raw, inside the string; \r\n line ends (Windows) too.
    inputs.write_bytes(
        "".join(f'{{"id": "k{i}", "input": "{text}"}}\r\n' for i, text in enumerate(texts)).encode()
    )
    items = read_inputs(inputs)
    assert [(item.id, item.input) for item in items] == [
        (f"k{i}", text) for i, text in enumerate(texts)
    ]

    out = tmp_path / "out.jsonl"
    agent = Agent(FunctionModel(echo))
    assert (await run_batch(agent, inputs, output=out)).succeeded == len(texts)
    assert {key: r["output"] for key, r in read_results(out).items()} == {
        f"k{i}": text for i, text in enumerate(texts)
    }
    again = await run_batch(agent, inputs, output=out, resume=True)
    assert (again.skipped, again.succeeded, again.changed_ids) == (len(texts), 0, [])


async def test_resume_names_inputs_whose_text_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.jsonl"
    seen: list[str] = []

    def record(messages: list[Message], tools: list[Any]) -> str:
        seen.append(messages[-1].content)
        return messages[-1].content.upper()

    agent = Agent(FunctionModel(record))
    first = [{"id": "a", "input": "one"}, {"id": 2, "input": "two"}, {"id": "c", "input": "3"}]
    await run_batch(agent, first, output=out)
    second = [{"id": "a", "input": "ONE, edited"}, {"id": 2, "input": "two"}]
    second += [{"id": "c", "input": "three"}, {"id": "d", "input": "four"}]
    seen.clear()
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        report = await run_batch(agent, second, output=out, resume=True)
    assert report.changed_ids == ["a", "c"]
    assert seen == ["four"]  # done inputs are not run again, changed or not
    assert read_results(out)["a"]["output"] == "ONE"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"batch: the text of inputs 'a', 'c' changed since their results were written to {out}; "
        "the old results are kept and not run again. To run on the new text, remove those "
        "lines from the results file, or start afresh with overwrite=True (--overwrite)"
    ]


def test_a_second_lock_on_one_output_names_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with OutputLock(out) as held:
        assert held.path.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLockedError, match=rf"in use by process {os.getpid()}") as err:
            OutputLock(out).acquire()
        assert err.value.pid == os.getpid()
    assert not held.path.exists()
    with OutputLock(out):  # released: free again
        pass


# --- several processes --------------------------------------------------------------------------

AGENT_FILE = """
import asyncio, os
from pathlib import Path

from agentkit import AuthenticationError
from agentkit.agent import Agent
from agentkit.testing import FunctionModel

WORK = Path(os.environ["WORK_DIR"])


async def reply(messages, tools):
    text = messages[-1].content
    with (WORK / "seen.txt").open("a", encoding="utf-8") as seen:
        seen.write(f"{os.getpid()} {text}\\n")
    if text == "hold" and not os.environ.get("NO_HOLD"):
        (WORK / "holding").write_text(str(os.getpid()))
        while not (WORK / "go").exists():
            await asyncio.sleep(0.01)
    if text == "revoked":
        raise AuthenticationError("the token was revoked", status=401, code=10000)
    return text.upper()


agent = Agent(FunctionModel(reply))
"""

IDS = ["hold", "b", "c", "d", "e"]


@pytest.fixture
def job(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An agent file, its inputs and the command that runs them, in ``tmp_path``."""
    agent_file = tmp_path / "agent.py"
    agent_file.write_text(AGENT_FILE, encoding="utf-8")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": k, "input": k}) + "\n" for k in IDS))
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["WORK_DIR"] = str(tmp_path)
    command = [sys.executable, "-m", "agentkit", "batch", f"{agent_file}:agent", str(inputs)]
    command += ["-o", str(out), "--concurrency", "1", "--no-progress"]
    processes: list[subprocess.Popen[str]] = []

    def start(*extra: str, **more_env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*command, *extra],
            env={**env, **more_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process

    def wait_holding(process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 30  # a bound on a wait, not a timing assert
        while not (tmp_path / "holding").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the job never got going"
            time.sleep(0.01)

    yield {
        "dir": tmp_path,
        "out": out,
        "inputs": inputs,
        "command": command,
        "start": start,
        "wait_holding": wait_holding,
    }
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def result_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]


def test_a_second_process_on_the_same_job_is_refused(job: dict[str, Any]) -> None:
    first = job["start"]()
    job["wait_holding"](first)
    second = job["start"]("--resume", NO_HOLD="1")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2, err
    assert f"in use by process {first.pid}" in err and "Traceback" not in err
    (job["dir"] / "go").touch()
    _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert sorted(result_ids(job["out"])) == sorted(IDS)  # each input once
    runs = (job["dir"] / "seen.txt").read_text().split("\n")
    assert all(line.startswith(str(first.pid)) for line in runs if line)


@pytest.mark.skipif(sys.platform == "win32", reason="a lock left by a dead process: POSIX flock")
def test_a_killed_job_resumes_and_says_what_runs_again(job: dict[str, Any]) -> None:
    first = job["start"]()
    job["wait_holding"](first)
    first.kill()  # SIGKILL: the lock file stays behind, with a dead PID in it
    first.communicate(timeout=30)
    lock = Path(str(job["out"]) + ".lock")
    assert lock.read_text().strip() == str(first.pid)

    second = job["start"]("--resume", NO_HOLD="1")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert sorted(result_ids(job["out"])) == sorted(IDS)
    assert not lock.exists()
    # Nothing was finished, so nothing is skipped: no resume note yet.
    assert "at-least-once" not in err

    job["out"].write_text(
        "".join(line + "\n" for line in job["out"].read_text().splitlines() if '"hold"' not in line)
    )
    third = job["start"]("--resume", NO_HOLD="1")
    _, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    note = err.splitlines()[0]
    assert note.startswith("agentkit batch: resuming: 4 of 5 inputs already done, 1 to run; ")
    assert "run again from the start" in note and "at-least-once" in note
    assert "--durable" in note and "docs/durable.md" in note


def test_a_stopped_job_tells_the_command_line_user_how_to_continue(job: dict[str, Any]) -> None:
    inputs: Path = job["inputs"]
    inputs.write_text("".join(json.dumps(k) + "\n" for k in ["a", "revoked", "c"]))
    stopped = job["start"]()
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 1, err
    resume = shlex.join(["agentkit", "batch", *job["command"][4:], "--resume"])
    assert err.splitlines()[:2] == [
        "agentkit batch: stopped after 1 of 3 inputs (AuthenticationError: the token was "
        f"revoked); results so far are in {job['out']}.",
        f"To continue, run: {resume}",
    ]
    assert err.splitlines()[2].startswith("Note: inputs that were running when a job stopped")
    assert "at-least-once" in err and "--durable" in err
    assert "resume=True" not in err and "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_interrupted_job_tells_the_command_line_user_how_to_continue(
    job: dict[str, Any],
) -> None:
    running = job["start"]()
    job["wait_holding"](running)
    running.send_signal(signal.SIGINT)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert (
        f"agentkit batch: stopped after 0 of 5 inputs (interrupted); results so far are in {job['out']}."
        in err
    )
    resume = shlex.join(["agentkit", "batch", *job["command"][4:], "--resume"])
    assert f"\nTo continue, run: {resume}\n" in err
    assert "resume=True" not in err and "Traceback" not in err
    assert not Path(str(job["out"]) + ".lock").exists()


async def test_an_output_that_cannot_be_written_is_explained(tmp_path: Path) -> None:
    agent = Agent(FunctionModel(echo))
    with pytest.raises(ConfigurationError, match=r"is a folder; give the path of a file, such as"):
        await run_batch(agent, ["a"], output=tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(
        ConfigurationError, match=r"^cannot lock the output file .*not-a-folder/out"
    ):
        await run_batch(agent, ["a"], output=blocker / "out.jsonl")
