"""Over HTTP: 1,000 four-request runs in flight against a local server with a fixed latency.

A :class:`~agentkit.testing_server.WireServer` runs in its own process (so it does not share the
client's GIL) and answers every request after ``--latency`` seconds: a call to ``add`` while
the conversation has fewer than three tool results, then a text answer. Measured:

- **floor**: bare ``httpx`` posting the same four Workers AI bodies per run (taken from one
  agentkit run, so no encoding is timed) with the same concurrency, pooled as ``WorkersAI``
  pools: the connection limit split over clients of at most 20 connections, each behind a
  semaphore of its size, picked in turn; each JSON reply is parsed;
- **one-pool httpx**: the same, with one client holding every connection (what httpx does by
  default): the difference to the floor is what the pooling alone buys, not the framework;
- **agentkit**: ``Agent`` + ``WorkersAI`` over the Workers AI route;
- **peers**: pydantic-ai and openai-agents through their OpenAI-compatible clients, against the
  server's OpenAI route (their own default connection limits).

Run by hand::

    pip install -e ".[bench]"
    python benchmarks/http_overhead.py                       # 1,000 runs in flight, 20 ms
    python benchmarks/http_overhead.py --runs 200 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import ANSWER, CALLS_PER_RUN, STEPS_PER_RUN, add

SERVER = """
import sys
from agentkit.testing_server import Reply, WireServer

latency, calls, answer = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def handler(request):
    done = sum(1 for m in request.messages if m.get("role") == "tool")
    if done < calls:
        return Reply.calls(("add", {"a": done, "b": 1}), delay=latency)
    return Reply.answer(answer, delay=latency)

with WireServer(handler=handler, validate=False, record=False) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
"""

PROMPT = "Add some numbers."


class Server:
    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(latency), str(CALLS_PER_RUN), ANSWER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the server did not start: {self.url!r}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _limits(runs: int) -> httpx.Limits:
    return httpx.Limits(max_connections=runs, max_keepalive_connections=runs)


async def agentkit_bodies(url: str) -> list[bytes]:
    """The four request bodies one agentkit run sends (captured in memory)."""
    from agentkit import Agent, tool
    from agentkit.models import WorkersAI

    bodies: list[bytes] = []
    async with httpx.AsyncClient(base_url=url) as real:

        async def forward(request: httpx.Request) -> httpx.Response:
            bodies.append(request.content)
            response = await real.send(
                real.build_request(request.method, request.url, content=request.content)
            )
            await response.aread()
            return httpx.Response(response.status_code, content=response.content)

        async with httpx.AsyncClient(transport=httpx.MockTransport(forward)) as http:
            model = WorkersAI(
                account_id="acct", api_token="token", base_url=url + "/client/v4", http_client=http
            )
            await Agent(model, tools=[tool(add)]).run(PROMPT)
    assert len(bodies) == STEPS_PER_RUN, len(bodies)
    return bodies


SHARD = 20  # the most connections WorkersAI gives one client


def make_floor(
    url: str, runs: int, bodies: list[bytes], *, sharded: bool = True
) -> tuple[Callable[[], Awaitable[str]], Any]:
    """Bare httpx: pooled like WorkersAI (``sharded``), or one client with every connection."""
    target = url + "/client/v4/accounts/acct/ai/run/@cf/meta/llama-3.2-3b-instruct"
    headers = {"authorization": "Bearer token", "content-type": "application/json"}
    sizes = [min(SHARD, runs - i) for i in range(0, runs, SHARD)] if sharded else [runs]
    shards = [
        (
            httpx.AsyncClient(limits=_limits(size), timeout=60, headers=headers),
            asyncio.Semaphore(size),
        )
        for size in sizes
    ]
    turn = 0

    async def run_once() -> str:
        nonlocal turn
        data: Any = None
        for body in bodies:
            turn = (turn + 1) % len(shards)
            client, gate = shards[turn]
            async with gate:
                response = await client.post(target, content=body)
            data = json.loads(response.content)
        return str(data["result"]["response"])

    async def close() -> None:
        for client, _ in shards:
            await client.aclose()

    return run_once, close


def make_agentkit(url: str, runs: int) -> tuple[Callable[[], Awaitable[str]], Any]:
    from agentkit import Agent, tool
    from agentkit.models import WorkersAI

    model = WorkersAI(
        account_id="acct",
        api_token="token",
        base_url=url + "/client/v4",
        limits=_limits(runs),
        timeout=60,
    )
    agent = Agent(model, tools=[tool(add)])

    async def run_once() -> str:
        return (await agent.run(PROMPT)).output

    return run_once, model.aclose


def make_pydantic_ai(url: str, runs: int) -> tuple[Callable[[], Awaitable[str]], Any]:
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    # Generous timeouts: with 1,000 runs in flight, a busy client loop is slow to connect.
    client = AsyncOpenAI(base_url=url + "/v1", api_key="token", max_retries=0, timeout=300)
    provider = OpenAIProvider(openai_client=client)
    agent = Agent(OpenAIChatModel("llama", provider=provider), tools=[add])

    async def run_once() -> str:
        return str((await agent.run(PROMPT)).output)

    return run_once, client.close


def make_openai_agents(url: str, runs: int) -> tuple[Callable[[], Awaitable[str]], Any]:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=url + "/v1", api_key="token", max_retries=0, timeout=300)
    agent = Agent(
        name="bench",
        model=OpenAIChatCompletionsModel("llama", openai_client=client),
        tools=[function_tool(add)],
    )

    async def run_once() -> str:
        return str((await Runner.run(agent, PROMPT)).final_output)

    return run_once, client.close


async def measure(
    name: str, run_once: Callable[[], Awaitable[str]], runs: int, repeat: int
) -> dict[str, Any]:
    for _ in range(3):
        out = await run_once()
        assert out == ANSWER, f"{name}: unexpected answer {out!r}"
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        outputs = await asyncio.gather(*(run_once() for _ in range(runs)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert all(o == ANSWER for o in outputs), f"{name}: a run failed"
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return {
        "framework": name,
        "wall_s": best_wall,
        "client_cpu_ms_per_request": best_cpu / (runs * STEPS_PER_RUN) * 1000,
    }


async def main_async(args: argparse.Namespace) -> None:
    server = Server(args.latency)
    try:
        rows = []
        bodies = await agentkit_bodies(server.url)
        makers: list[tuple[str, Callable[..., Any]]] = [
            ("bare httpx, pooled like WorkersAI (floor)", lambda u, r: make_floor(u, r, bodies)),
            (
                "bare httpx, one pool",
                lambda u, r: make_floor(u, r, bodies, sharded=False),
            ),
            ("agentkit", make_agentkit),
            ("pydantic-ai", make_pydantic_ai),
            ("openai-agents", make_openai_agents),
        ]
        for name, make in makers:
            if args.only and name.split()[0].rstrip(",") not in args.only:
                continue
            try:
                run_once, close = make(server.url, args.runs)
            except ImportError as exc:
                print(f"skipping {name}: not installed ({exc.name})", file=sys.stderr)
                continue
            try:
                row = await measure(name, run_once, args.runs, args.repeat)
            except Exception as exc:  # a peer that cannot keep up is reported, not fatal
                print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            finally:
                if close is not None:
                    await close()
            rows.append(row)
            print(f"measured {name}: {row['wall_s']:.2f} s", file=sys.stderr, flush=True)
    finally:
        server.close()

    floor = next((r for r in rows if r["framework"].endswith("(floor)")), None)
    print(
        f"{args.runs} runs in flight x {STEPS_PER_RUN} requests, {args.latency * 1000:.0f} ms "
        f"server latency, best of {args.repeat}, Python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    print("| client | wall time, s | x floor | client CPU per request, ms | CPU x floor |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        wall = f"{r['wall_s'] / floor['wall_s']:.2f}" if floor else "-"
        cpu = (
            f"{r['client_cpu_ms_per_request'] / floor['client_cpu_ms_per_request']:.2f}"
            if floor
            else "-"
        )
        print(
            f"| {r['framework']} | {r['wall_s']:.2f} | {wall} "
            f"| {r['client_cpu_ms_per_request']:.2f} | {cpu} |"
        )
    if args.json:
        print(json.dumps(rows, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in flight")
    parser.add_argument("--latency", type=float, default=0.02, help="server latency, seconds")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the best is kept")
    parser.add_argument("--only", nargs="*", help="bare, agentkit, pydantic-ai, openai-agents")
    parser.add_argument("--json", action="store_true", help="also print JSON")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
