"""Batches: a process killed mid-batch resumes where it stopped; inputs saved with a BOM load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentkit import Message
from agentkit.agent import Agent
from agentkit.batch import read_inputs, run_batch
from agentkit.testing import FunctionModel

AGENT_FILE = """
import asyncio, os
from pathlib import Path

from agentkit.agent import Agent
from agentkit.testing import FunctionModel

SEEN = Path(os.environ["SEEN_FILE"])


async def reply(messages, tools):
    text = messages[-1].content
    with SEEN.open("a", encoding="utf-8") as seen:
        seen.write(text + "\\n")
    if text == "stall" and not os.environ.get("NO_STALL"):
        await asyncio.sleep(3600)  # the process is killed here
    return text.upper()


agent = Agent(FunctionModel(reply))
"""


def test_a_killed_batch_resumes_without_redoing_finished_inputs(tmp_path: Path) -> None:
    agent_file = tmp_path / "stalling_agent.py"
    agent_file.write_text(AGENT_FILE, encoding="utf-8")
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "".join(json.dumps({"id": k, "input": k}) + "\n" for k in ("a", "b", "stall", "c")),
        encoding="utf-8",
    )
    out = tmp_path / "results.jsonl"
    seen = tmp_path / "seen.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["SEEN_FILE"] = str(seen)
    command = [sys.executable, "-m", "agentkit", "batch", f"{agent_file}:agent", str(inputs)]
    command += ["-o", str(out), "--concurrency", "1", "--no-progress"]

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30  # bounded wait for "a" and "b" to be written
        while time.monotonic() < deadline and process.poll() is None:
            if "stall" in (seen.read_text(encoding="utf-8") if seen.exists() else ""):
                break
            time.sleep(0.02)
        assert process.poll() is None, process.communicate(timeout=10)
        process.kill()  # a crash: no cleanup, no message
    finally:
        process.kill()
        process.communicate(timeout=10)
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        "a",
        "b",
    ]

    env["NO_STALL"] = "1"
    done = subprocess.run(
        [*command, "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 succeeded, 0 failed, 2 skipped" in done.stderr
    assert seen.read_text(encoding="utf-8").split() == ["a", "b", "stall", "stall", "c"]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: r["output"] for r in records} == {
        "a": "A",
        "b": "B",
        "stall": "STALL",
        "c": "C",
    }
    assert len(records) == 4


async def test_inputs_saved_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_bytes('{"id": "q1", "input": "héllo"}\n"plain"\n'.encode("utf-8-sig"))
    assert [(i.id, i.input) for i in read_inputs(inputs)] == [("q1", "héllo"), (1, "plain")]

    def echo(messages: list[Message], tools: list[Any]) -> str:
        return messages[-1].content

    report = await run_batch(Agent(FunctionModel(echo)), inputs, output=tmp_path / "o.jsonl")
    assert report.succeeded == 2
