"""Every example, and ``agentkit demo`` / ``run`` / ``batch``, runs as a user would run it.

Each runs as a subprocess twice: offline (no Cloudflare variables: the scripted stand-ins) and
"online" against a local :class:`WireServer` speaking the Workers AI wire format, reached through
``CLOUDFLARE_API_BASE_URL``. The server's handler plays a plausible model (tool calls with the
right names, then answers), and checks every request body against the Workers AI input schema.
All the subprocesses run at once, so the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentkit.testing import Reply, WireRequest, WireServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TOKEN = "test-token-7f3a9c"
ACCOUNT = "acct-0123"

Handler = Callable[[WireRequest], "Reply | str"]


# --- reading a request ------------------------------------------------------------------------


def offered(request: WireRequest) -> set[str]:
    """The names of the tools offered in a Workers AI request (either tool shape)."""
    names = set()
    for item in request.body.get("tools") or []:
        names.add(item["function"]["name"] if "function" in item else item["name"])
    return names


def user_text(request: WireRequest) -> str:
    """The last user message."""
    return next(m["content"] for m in reversed(request.messages) if m["role"] == "user")


def results(request: WireRequest) -> dict[str, str]:
    """The latest result of each tool since the last user message."""
    found: dict[str, str] = {}
    for message in reversed(request.messages):
        if message["role"] == "user":
            break
        if message["role"] == "tool":
            found.setdefault(message["name"], message["content"])
    return found


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]


# --- model stand-ins on the server, one per program -------------------------------------------


def quickstart(request: WireRequest) -> Reply:
    done = results(request)
    if "multiply" not in done:  # the legacy Workers AI call shape: {name, arguments}
        return Reply.calls(("multiply", {"a": 17, "b": 23}), shape="legacy")
    return Reply.answer(f"17 * 23 = {numbers(done['multiply'])[0]:g}.")


def pydantic_argument(request: WireRequest) -> Reply:
    done = results(request)
    if "place_order" not in done:  # Llama 3.2 often writes the call as text
        order = {"item": "notebook", "quantity": "3", "express": True}
        return Reply.answer(json.dumps({"name": "place_order", "parameters": {"order": order}}))
    return Reply.answer(f"Done: {done['place_order']}.")


def structured_output(request: WireRequest) -> Reply:
    if "could not be used" in user_text(request):
        return Reply.answer('{"title": "Alien", "year": 1979, "director": "Ridley Scott"}')
    return Reply.answer('Sure! Here it is: {"title": "Alien", "year": "1979"}')


def streaming(request: WireRequest) -> Reply:
    done = results(request)
    if "forecast" not in done:
        return Reply.calls(("forecast", {"city": "Paris"}), ("forecast", {"city": "Lisbon"}))
    return Reply.answer("Paris: rain, take an umbrella. Lisbon: sunny.", chunk_chars=5)


def summarize(request: WireRequest) -> Reply:
    prompt = user_text(request)
    if "Summary 1:" in prompt:
        return Reply.answer(f"The combined summary of {prompt.count('Summary ')} summaries.")
    part = re.search(r"part (\d+) of (\d+)", prompt)
    where = f"part {part.group(1)}" if part else "the text"
    return Reply.answer(f"The Constitution, {where}: powers of Congress and the President.")


def retrieval_agent(request: WireRequest) -> Reply:
    done = results(request)
    if "search_documents" not in done:
        return Reply.calls(("search_documents", {"query": "refine strategy requests cost"}))
    first = re.search(r"^\[(\S+)\]$", done["search_documents"], re.MULTILINE)
    assert first is not None, done["search_documents"]
    return Reply.answer(f"Refine makes one request per chunk [{first.group(1)}].")


def batch(request: WireRequest) -> Reply:
    review = user_text(request).lower()
    good = any(w in review for w in ("love", "excellent", "best"))
    bad = any(w in review for w in ("stopped", "broken", "terrible"))
    return Reply.answer("Positive" if good else "negative" if bad else "neutral")


def agents_as_tools(request: WireRequest) -> Reply:
    tools, done = offered(request), results(request)
    if tools == {"unit_converter", "calculator"}:  # the coordinator
        if "unit_converter" not in done:
            return Reply.calls(("unit_converter", {"request": "Convert 1.5 lb to g"}))
        grams = numbers(done["unit_converter"])[-1]
        if "calculator" not in done:
            return Reply.calls(("calculator", {"request": f"What is {grams} * 1.5?"}))
        total = numbers(done["calculator"])[-1]
        return Reply.answer(f"You need about {total:.0f} g of flour.")
    if tools == {"convert_units"}:
        if "convert_units" not in done:
            args = {"value": 1.5, "from_unit": "lb", "to_unit": "g"}
            return Reply.calls(("convert_units", args), shape="legacy")
        return Reply.answer(f"1.5 lb is {done['convert_units']} g.")
    if tools == {"calculate"}:
        if "calculate" not in done:
            a, b = numbers(user_text(request))[:2]
            return Reply.calls(("calculate", {"a": a, "operator": "*", "b": b}))
        return Reply.answer(f"The result is {done['calculate']}.")
    raise AssertionError(f"unexpected tools {tools}")


def mcp_tools(request: WireRequest) -> Reply:
    tools, done = offered(request), results(request)
    assert tools == {"glossary_define", "shout"}, tools
    if "glossary_define" not in done:  # the nested object sent as JSON text, as small models do
        return Reply.calls(("glossary_define", {"term": '{"word": "mcp"}'}))
    if "shout" not in done:
        return Reply.calls(("shout", {"text": done["glossary_define"]}))
    return Reply.answer(f"MCP is {done['shout']}.")


def demo(request: WireRequest) -> Reply:
    done = results(request)
    if "convert_units" not in done:
        return Reply.calls(("convert_units", {"value": 2.5, "from_unit": "lb", "to_unit": "g"}))
    if "calculate" not in done:
        return Reply.calls(("calculate", {"expression": f"{done['convert_units']} - 800"}))
    return Reply.answer(f"You need about {float(done['calculate']):.0f} g more flour.")


def sessions(request: WireRequest) -> Reply:
    if "which gate" in user_text(request):  # answerable only from the stored first turn
        earlier = [m["content"] for m in request.messages if m["role"] == "tool"]
        return Reply.answer("Gate B34." if any("B34" in c for c in earlier) else "No idea.")
    done = results(request)
    if "flight_status" not in done:
        return Reply.calls(("flight_status", {"number": "LX1820"}))
    return Reply.answer(f"It leaves at 09:40 ({done['flight_status']}).", chunk_chars=6)


def no_model(request: WireRequest) -> Reply:
    raise AssertionError("this program makes no model request")


# --- the programs -----------------------------------------------------------------------------


@dataclass
class Program:
    args: list[str]  # after the Python interpreter
    offline: list[str]  # lines the offline run prints
    online: list[str]  # text the online run prints
    handler: Handler
    requests: int | None = None  # exact number of model requests online, when known
    streamed: bool = False


def example(name: str) -> list[str]:
    return [str(EXAMPLES / name)]


PROGRAMS: dict[str, Program] = {
    "quickstart": Program(
        example("quickstart.py"),
        offline=["17 * 23 = 391.", "2 model requests, 1 tool call(s)"],
        online=["17 * 23 = 391.", "2 model requests, 1 tool call(s)"],
        handler=quickstart,
        requests=2,
    ),
    "pydantic_argument": Program(
        example("pydantic_argument.py"),
        offline=["tool said: ordered 3 x notebook, arriving in 1 day(s)"],
        online=["tool said: ordered 3 x notebook, arriving in 1 day(s)", "Done: ordered 3"],
        handler=pydantic_argument,
        requests=2,
    ),
    "structured_output": Program(
        example("structured_output.py"),
        offline=["Alien (1979), directed by Ridley Scott", "took 2 model requests"],
        online=["Alien (1979), directed by Ridley Scott", "took 2 model requests"],
        handler=structured_output,
        requests=2,
    ),
    "streaming": Program(
        example("streaming.py"),
        offline=[
            "[forecast -> light rain, 14 °C]",
            "[forecast -> sunny, 22 °C]",
            "[done in 2 steps]",
        ],
        online=[
            "[forecast -> light rain, 14 °C]",
            "[forecast -> sunny, 22 °C]",
            "Paris: rain, take an umbrella. Lisbon: sunny.",
            "[done in 2 steps]",
        ],
        handler=streaming,
        requests=2,
        streamed=True,
    ),
    "tool_definition": Program(
        example("tool_definition.py"),
        offline=[
            '  "type": "function",',
            '{"city":"Paris","days":2,"unit":"celsius","forecast":["sunny","sunny"]}',
        ],
        online=['"name": "get_forecast"'],
        handler=no_model,
        requests=0,
    ),
    "summarize": Program(
        example("summarize.py"),
        offline=[
            "model: offline-extractive",
            "map_reduce: 5 chunks, 7 requests, 2 combining levels",
            "Philadelphia",
            "0 failures",
        ],
        online=["The combined summary of", "0 failures"],
        handler=summarize,
    ),
    "retrieval_agent": Program(
        example("retrieval_agent.py"),
        offline=["model: offline-retrieval; ", "citations: ok (docs/", "requests: 2, steps: 2"],
        online=[
            "A: Refine makes one request per chunk [docs/",
            "citations: ok (docs/",
            "requests: 2, steps: 2",
        ],
        handler=retrieval_agent,
        requests=2,
    ),
    "batch": Program(
        example("batch.py"),
        offline=[
            "r2: negative",
            "r3: neutral",
            "r7: positive",
            "8 succeeded, 0 failed, 0 skipped; 8 requests; totals: {'negative': 3, 'neutral': 2, 'positive': 3}",
        ],
        online=[
            "8 succeeded, 0 failed, 0 skipped; 8 requests; totals: {'negative': 3, 'neutral': 2, 'positive': 3}"
        ],
        handler=batch,
        requests=8,
    ),
    "agents_as_tools": Program(
        example("agents_as_tools.py"),
        offline=[
            "→ unit_converter: Convert 1.5 lb to grams.",
            "  ← 1.5 lb is 680.389 g.",
            "→ calculator: What is 680.389 * 1.5?",
            "answer: 1.5 lb is 680.389 g, so for 6 people (1.5 times the recipe) you need about 1021 g of flour.",
            "7 model requests in all (3 by the coordinator), 4 tool calls, 0 tokens",
        ],
        online=[
            "  ← 1.5 lb is 680.389 g.",
            "answer: You need about 1021 g of flour.",
            "7 model requests in all (3 by the coordinator), 4 tool calls",
        ],
        handler=agents_as_tools,
        requests=7,
    ),
    "sessions": Program(
        example("sessions.py"),
        offline=[
            "agent> Gate B34.",
            "[6 messages kept: user, assistant, tool, assistant, user, assistant]",
        ],
        online=[
            "agent> It leaves at 09:40 (Zurich 09:40 -> Lisbon 11:35, gate B34).",
            "agent> Gate B34.",
            "[6 messages kept: user, assistant, tool, assistant, user, assistant]",
        ],
        handler=sessions,
        requests=3,
        streamed=True,
    ),
    "mcp_tools": Program(
        example("mcp_tools.py"),
        offline=[
            "[glossary_define -> the Model Context Protocol: a standard way to publish tools to models]",
            "3 model requests, 2 tool calls",
        ],
        online=[
            "answer: MCP is THE MODEL CONTEXT PROTOCOL: A STANDARD WAY TO PUBLISH TOOLS TO MODELS.",
            "3 model requests, 2 tool calls",
        ],
        handler=mcp_tools,
        requests=3,
    ),
    "agentkit demo": Program(
        ["-m", "agentkit", "demo"],
        offline=[
            "answer: 2.5 lb is 1133.9809 g, so with 800 g you need about 334 g more flour.",
            "(3 model requests, 2 tool calls)",
        ],
        online=[
            "→ convert_units(value=2.5, from_unit='lb', to_unit='g')",
            "  ← 1133.9809",
            "answer: You need about 334 g more flour.",
            "(3 model requests, 2 tool calls)",
        ],
        handler=demo,
        requests=3,
    ),
    "agentkit run": Program(
        [
            "-m",
            "agentkit",
            "run",
            str(EXAMPLES / "quickstart.py") + ":agent",
            "What is 17 * 23?",
            "--show-tools",
        ],
        offline=["17 * 23 = 391."],
        online=["17 * 23 = 391."],
        handler=quickstart,
        requests=2,
    ),
    "agentkit batch": Program(
        [
            "-m",
            "agentkit",
            "batch",
            str(EXAMPLES / "batch.py") + ":agent",
            str(EXAMPLES / "data" / "reviews.jsonl"),
            "--no-progress",
            "--overwrite",
            "-o",
        ],
        offline=[],
        online=[],
        handler=batch,
        requests=8,
    ),
}


# --- running them all at once -----------------------------------------------------------------


@dataclass
class Outcome:
    done: subprocess.CompletedProcess[str]
    server: WireServer | None
    output_file: Path | None


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def launch(name: str, mode: str, server: WireServer | None, scratch: Path) -> Outcome:
    program = PROGRAMS[name]
    args = list(program.args)
    output_file = None
    if name == "agentkit batch":
        output_file = scratch / f"results-{mode}.jsonl"
        args.append(str(output_file))
    env = base_env()
    if server is not None:
        env["CLOUDFLARE_ACCOUNT_ID"] = ACCOUNT
        env["CLOUDFLARE_API_TOKEN"] = TOKEN
        env["CLOUDFLARE_API_BASE_URL"] = server.base_url
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=90,
        env=env,
        cwd=scratch,
        check=False,
    )
    return Outcome(done, server, output_file)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Outcome]]:
    scratch = tmp_path_factory.mktemp("examples")
    servers = {
        name: WireServer(handler=program.handler, api_token=TOKEN).start()
        for name, program in PROGRAMS.items()
    }
    try:
        jobs = [(name, mode) for name in PROGRAMS for mode in ("offline", "online")]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {
                job: pool.submit(
                    launch, job[0], job[1], servers[job[0]] if job[1] == "online" else None, scratch
                )
                for job in jobs
            }
            yield {job: future.result() for job, future in futures.items()}
    finally:
        for server in servers.values():
            server.stop()


def run_offline(*args: str, cwd: Path) -> str:
    """Run ``python *args`` with no Cloudflare variables; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=90,
        env=base_env(),
        cwd=cwd,
        check=True,
    )
    return done.stdout


def test_summarize_example_with_the_refine_strategy(tmp_path: Path) -> None:
    out = run_offline(
        str(EXAMPLES / "summarize.py"),
        "--strategy",
        "refine",
        "--chunk-tokens",
        "2500",
        cwd=tmp_path,
    )
    assert "refine: 3 chunks, 3 requests" in out


def test_batch_example_resumes_without_redoing_inputs(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    first = run_offline(str(EXAMPLES / "batch.py"), "-o", str(results), cwd=tmp_path)
    assert "8 succeeded, 0 failed, 0 skipped; 8 requests" in first
    assert len(results.read_text(encoding="utf-8").splitlines()) == 8
    again = run_offline(str(EXAMPLES / "batch.py"), "-o", str(results), "--resume", cwd=tmp_path)
    assert "0 succeeded, 0 failed, 8 skipped; 0 requests" in again


def test_retrieval_example_answer_cites_a_docs_passage(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    out = outcomes[("retrieval_agent", "offline")].done.stdout
    assert re.search(r"^A: .*\[docs/[\w./-]+#\d+\]$", out, re.MULTILINE), out


def test_every_example_is_covered() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    covered = {Path(p.args[0]).name for p in PROGRAMS.values() if p.args[0].endswith(".py")}
    assert scripts == covered


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_runs_offline(name: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    outcome = outcomes[(name, "offline")]
    done = outcome.done
    assert done.returncode == 0, done.stderr
    for expected in PROGRAMS[name].offline:
        assert expected in done.stdout, (expected, done.stdout)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_runs_on_the_workers_ai_wire(name: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    program = PROGRAMS[name]
    outcome = outcomes[(name, "online")]
    done, server = outcome.done, outcome.server
    assert server is not None
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in program.online:
        assert expected in done.stdout, (expected, done.stdout)
    assert "scripted" not in done.stdout and "offline" not in done.stdout
    # Every request went to the Workers AI route, authorized, with a body valid for the model.
    assert server.violations == []
    for request in server.requests:
        assert request.api == "workers-ai" and request.authorized, request.path
        assert request.path.startswith(f"/accounts/{ACCOUNT}/ai/run/@cf/"), request.path
        assert request.stream is program.streamed
    if program.requests is not None:
        assert len(server.requests) == program.requests
    assert TOKEN not in done.stdout + done.stderr


def test_summarize_online_counts_every_request(outcomes: dict[tuple[str, str], Outcome]) -> None:
    outcome = outcomes[("summarize", "online")]
    assert outcome.server is not None
    stats = re.search(r"map_reduce: (\d+) chunks, (\d+) requests", outcome.done.stdout)
    assert stats is not None, outcome.done.stdout
    chunks, requests = int(stats.group(1)), int(stats.group(2))
    assert chunks > 1
    assert requests == len(outcome.server.requests) > chunks  # the chunks, then combining
    prompts = [user_text(r) for r in outcome.server.requests]
    assert sum("Summary 1:" not in p for p in prompts) == chunks


def test_retrieval_online_searched_the_project_docs(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    outcome = outcomes[("retrieval_agent", "online")]
    assert outcome.server is not None
    second = outcome.server.requests[1].messages
    assert second[-1]["role"] == "tool" and "[docs/patterns.md#" in second[-1]["content"]


def test_batch_command_writes_one_line_per_input(outcomes: dict[tuple[str, str], Outcome]) -> None:
    for mode in ("offline", "online"):
        outcome = outcomes[("agentkit batch", mode)]
        assert outcome.done.returncode == 0, outcome.done.stderr
        assert "8 succeeded, 0 failed, 0 skipped; 8 requests" in outcome.done.stderr
        assert outcome.output_file is not None
        lines = outcome.output_file.read_text(encoding="utf-8").splitlines()
        records = {r["id"]: r for r in map(json.loads, lines)}
        assert len(lines) == len(records) == 8
        assert records["r1"]["output"].strip().lower() == "positive"
        assert records["r2"]["output"].strip().lower() == "negative"
        assert all(r["error"] is None for r in records.values())


def test_agents_as_tools_online_each_agent_saw_only_its_tools(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    outcome = outcomes[("agents_as_tools", "online")]
    assert outcome.server is not None
    seen = [frozenset(offered(r)) for r in outcome.server.requests]
    assert seen.count(frozenset({"unit_converter", "calculator"})) == 3
    assert seen.count(frozenset({"convert_units"})) == 2
    assert seen.count(frozenset({"calculate"})) == 2
    # A specialist starts afresh: it sees the request, not the coordinator's conversation.
    specialist = next(r for r in outcome.server.requests if offered(r) == {"convert_units"})
    assert [m["role"] for m in specialist.messages] == ["system", "user"]
    assert specialist.messages[-1]["content"] == "Convert 1.5 lb to g"
