import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentkit import AuthenticationError, ConfigurationError, Message, ModelError
from agentkit.agent import Agent
from agentkit.batch import (
    add_batch_command,
    load_agent,
    read_inputs,
    read_results,
    run_batch,
    run_batch_sync,
)
from agentkit.testing import FunctionModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def shout(messages: list[Message], tools: list[Any]) -> str:
    text = messages[-1].content
    if text == "bad":
        raise ModelError("the model could not answer 'bad'")
    return text.upper()


def make_agent(fn: Callable[[list[Message], list[Any]], Any] = shout) -> Agent[str]:
    return Agent(FunctionModel(fn))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_every_input_gets_one_result_line(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    report = await run_batch(make_agent(), ["a", "b", "c"], output=out)
    records = sorted(lines(out), key=lambda r: r["index"])
    assert [(r["id"], r["input"], r["output"], r["error"]) for r in records] == [
        (0, "a", "A", None),
        (1, "b", "B", None),
        (2, "c", "C", None),
    ]
    assert records[0]["usage"]["requests"] == 1 and records[0]["steps"] == 1
    assert (report.total, report.succeeded, report.failed, report.skipped) == (3, 3, 0, 0)
    assert report.ok and report.usage.requests == 3


async def test_a_failed_input_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    report = await run_batch(make_agent(), ["a", "bad", "c"], output=out, concurrency=1)
    records = read_results(out)
    assert records[1]["output"] is None
    assert records[1]["error"] == {
        "type": "ModelError",
        "message": "the model could not answer 'bad'",
    }
    assert records[0]["output"] == "A" and records[2]["output"] == "C"
    assert report.failed == 1 and report.failed_ids == [1] and not report.ok


def test_inputs_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "q1", "input": "one"}\n\n"two"\n{"prompt": "three", "id": 7}\n', encoding="utf-8"
    )
    items = read_inputs(path)
    assert [(i.id, i.index, i.input) for i in items] == [
        ("q1", 0, "one"),
        (1, 1, "two"),
        (7, 2, "three"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('"ok"\n{not json}\n', "in.jsonl line 2 is not valid JSON"),
        ('{"id": 1, "text": "x"}\n', r"needs an 'input' \(or 'prompt'\) string"),
        ("[1, 2]\n", "an input must be a string or an object"),
        ('{"id": 1, "input": "a"}\n{"id": 1, "input": "b"}\n', "the same id 1"),
        ('{"id": [1], "input": "a"}\n', "'id' must be a string or an integer"),
    ],
)
def test_bad_inputs_are_explained(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        read_inputs(path)


async def test_existing_output_is_never_clobbered_by_mistake(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text('{"id": 0, "output": "keep me", "error": null}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="already exists; pass resume=True"):
        await run_batch(make_agent(), ["a"], output=out)
    assert "keep me" in out.read_text(encoding="utf-8")
    await run_batch(make_agent(), ["a"], output=out, overwrite=True)
    assert [r["output"] for r in lines(out)] == ["A"]


async def test_resume_skips_done_inputs_reruns_failed_and_drops_a_cut_line(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text(
        '{"id": "x", "index": 0, "output": "OLD X", "error": null}\n'
        '{"id": "y", "index": 1, "output": null, "error": {"type": "E", "message": "m"}}\n'
        '{"id": "z", "index": 2, "outp',  # cut short by a crash
        encoding="utf-8",
    )
    seen: list[str] = []

    def record(messages: list[Message], tools: list[Any]) -> str:
        seen.append(messages[-1].content)
        return shout(messages, tools)

    inputs = [{"id": k, "input": k} for k in ("x", "y", "z", "w")]
    report = await run_batch(make_agent(record), inputs, output=out, resume=True)
    assert sorted(seen) == ["w", "y", "z"]
    assert (report.skipped, report.succeeded) == (1, 3)
    results = read_results(out)
    assert {k: r["output"] for k, r in results.items()} == {
        "x": "OLD X",
        "y": "Y",
        "z": "Z",
        "w": "W",
    }
    assert all(line for line in out.read_text(encoding="utf-8").split("\n")[:-1])
    assert len(lines(out)) == 5  # the old failure of "y" stays, its new line wins

    again = await run_batch(make_agent(record), inputs, output=out, resume=True)
    assert again.skipped == 4 and len(seen) == 3


async def test_concurrency_is_limited(tmp_path: Path) -> None:
    in_flight = 0
    most = 0

    async def slow(messages: list[Message], tools: list[Any]) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return "ok"

    fn: Callable[[list[Message], list[Any]], Awaitable[str]] = slow
    report = await run_batch(
        Agent(FunctionModel(fn)),
        [str(i) for i in range(10)],
        output=tmp_path / "o.jsonl",
        concurrency=3,
    )
    assert report.succeeded == 10
    assert most == 3


async def test_errors_no_retry_can_fix_stop_the_batch(tmp_path: Path) -> None:
    def denied(messages: list[Message], tools: list[Any]) -> str:
        if messages[-1].content == "c":
            raise AuthenticationError("token rejected", status=401, code=10000)
        return "ok"

    out = tmp_path / "o.jsonl"
    with pytest.raises(AuthenticationError):
        await run_batch(make_agent(denied), list("abcdef"), output=out, concurrency=1)
    assert [r["input"] for r in lines(out)] == ["a", "b"]
    report = await run_batch(make_agent(), list("abcdef"), output=out, resume=True)
    assert report.skipped == 2 and report.succeeded == 4


async def test_an_interrupted_batch_keeps_finished_lines_and_resumes(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def stuck_on_d(messages: list[Message], tools: list[Any]) -> str:
        if messages[-1].content == "d":
            await never.wait()
        return "done"

    out = tmp_path / "o.jsonl"
    task = asyncio.ensure_future(
        run_batch(Agent(FunctionModel(stuck_on_d)), list("abcdef"), output=out, concurrency=2)
    )
    for _ in range(500):  # bounded wait: until the other five are written
        await asyncio.sleep(0.01)
        if out.exists() and len(out.read_text(encoding="utf-8").splitlines()) == 5:
            break
    task.cancel()  # what Ctrl-C does
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(r["input"] for r in lines(out)) == ["a", "b", "c", "e", "f"]
    report = await run_batch(make_agent(), list("abcdef"), output=out, resume=True)
    assert (report.skipped, report.succeeded) == (5, 1)
    assert read_results(out)[3]["output"] == "D"


async def test_structured_outputs_are_written_as_json(tmp_path: Path) -> None:
    agent: Agent[int] = Agent(FunctionModel(lambda m, t: "42"), output_type=int)
    await run_batch(agent, ["q"], output=tmp_path / "o.jsonl")
    assert lines(tmp_path / "o.jsonl")[0]["output"] == 42


def test_sync_twin_and_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_batch_sync(make_agent(), ["a", "b"], output=tmp_path / "o.jsonl", progress=True)
    assert report.succeeded == 2
    assert "batch" in capsys.readouterr().err
    run_batch_sync(make_agent(), ["a"], output=tmp_path / "p.jsonl")
    assert capsys.readouterr().err == ""  # not a terminal: no bar


AGENT_FILE = """
from agentkit.agent import Agent
from agentkit.testing import FunctionModel

agent = Agent(FunctionModel(lambda messages, tools: messages[-1].content[::-1]))

def make():
    return agent

not_an_agent = 3
"""


def test_load_agent_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "my_agent.py"
    path.write_text(AGENT_FILE, encoding="utf-8")
    assert isinstance(load_agent(f"{path}:agent"), Agent)
    assert isinstance(load_agent(str(path)), Agent)  # NAME defaults to "agent"
    assert isinstance(load_agent(f"{path}:make"), Agent)  # a factory
    with pytest.raises(ConfigurationError, match="defines no 'missing'"):
        load_agent(f"{path}:missing")
    with pytest.raises(ConfigurationError, match="is a int, not an Agent"):
        load_agent(f"{path}:not_an_agent")
    with pytest.raises(ConfigurationError, match="no such file"):
        load_agent(f"{tmp_path / 'nope.py'}:agent")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('missing setting')\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="raised RuntimeError: missing setting"):
        load_agent(f"{broken}:agent")


def test_batch_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my_agent.py"
    path.write_text(AGENT_FILE, encoding="utf-8")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"abc"\n{"id": "k", "input": "xyz"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    parser = argparse.ArgumentParser(prog="agentkit")
    add_batch_command(parser.add_subparsers(dest="command"))

    def main(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        status: int = args.handler(args)
        return status

    assert main("batch", f"{path}:agent", str(inputs), "-o", str(out), "--concurrency", "2") == 0
    assert {r["id"]: r["output"] for r in lines(out)} == {0: "cba", "k": "zyx"}
    assert "2 succeeded, 0 failed" in capsys.readouterr().err
    assert main("batch", f"{path}:agent", str(inputs), "-o", str(out)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main("batch", f"{path}:agent", str(inputs), "-o", str(out), "--resume") == 0
    assert "0 succeeded, 0 failed, 2 skipped" in capsys.readouterr().err


def test_example_agent_loads_as_a_command_line_target(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    agent = load_agent(f"{EXAMPLES / 'batch.py'}:agent")
    assert agent.model.model_name == "offline-sentiment"
