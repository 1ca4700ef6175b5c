"""Per-step cost over HTTP across a long run: does step 1,000 cost what step 10 does?

One run of ``--steps`` requests (default 1,000) through ``Agent`` + ``WorkersAI`` against an
in-memory ``httpx.MockTransport`` that answers each request with one ``lookup`` call (new
arguments each time, nested values, no id: the client makes one), then a text answer. The
transport does not read the body, so its own cost is the same at every step.

Per step (around steps 10, 100 and 1,000; median of 11 steps each, best of ``--repeat`` runs):
the process CPU time between two ``StepFinished`` events, and the request body's size. Two floors at the same steps, so the
cost of the bytes themselves can be told apart from agentkit's:

- **bare httpx, same bytes**: joining a body of that step's size from as many precomputed
  pieces as the transcript has messages, posting it through the same kind of client and
  transport and parsing the reply (what assembling and sending the bytes costs anyway);
- **agentkit, no run scope** (``--compare``): the same run with the backend seeing no run scope,
  as before messages were encoded once per run: every request re-encodes every message and
  rescans the history for used call ids.

Run by hand::

    python benchmarks/long_run.py
    python benchmarks/long_run.py --steps 300 --compare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import httpx

from agentkit import Agent, StepFinished, tool
from agentkit.models import WorkersAI

POINTS = (10, 100, 1000)


def lookup(key: str, limit: int = 5, filters: dict[str, Any] | None = None) -> str:
    """Look a key up.

    Args:
        key: The key.
        limit: Rows to return.
        filters: Field filters.
    """
    return f"{key}: found 3 rows"


def make_transport(steps: int) -> tuple[httpx.MockTransport, list[int]]:
    sizes: list[int] = []
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        sizes.append(len(request.content))
        if count < steps:
            args = {
                "key": f"item {count}",
                "limit": 5,
                "filters": {"lang": "en", "tags": ["a", "b"]},
            }
            call = {"name": "lookup", "arguments": args}
            result: dict[str, Any] = {"response": None, "tool_calls": [call]}
        else:
            result = {"response": "done"}
        result["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        return httpx.Response(200, json={"result": result, "success": True})

    return httpx.MockTransport(handler), sizes


async def agentkit_steps(steps: int, scope: bool) -> tuple[list[float], list[int]]:
    import agentkit.models._base_http as base_http

    transport, sizes = make_transport(steps)
    original = base_http.current_scope
    if not scope:
        base_http.current_scope = lambda: None  # type: ignore[assignment]
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            model = WorkersAI(account_id="a", api_token="t", http_client=client)
            agent = Agent(model, tools=[tool(lookup)], max_steps=steps)
            cpu: list[float] = []
            last = time.process_time()
            async for event in agent.iter("Look everything up."):
                if isinstance(event, StepFinished):
                    now = time.process_time()
                    cpu.append(now - last)
                    last = now
    finally:
        base_http.current_scope = original
    return cpu, sizes


async def bare_step(size: int, pieces: int, repeat: int = 11) -> float:
    transport, _ = make_transport(10**9)
    piece = b"x" * max(1, size // pieces)
    parts = [piece] * pieces
    async with httpx.AsyncClient(transport=transport) as client:
        samples = []
        for _ in range(repeat):
            t0 = time.process_time()
            body = b"".join([b'{"messages":[', *parts, b"]}"])
            response = await client.post(
                "https://api.example/run",
                content=body,
                headers={"content-type": "application/json"},
            )
            json.loads(response.content)
            samples.append(time.process_time() - t0)
    return statistics.median(samples)


def around(values: list[Any], step: int) -> list[Any]:
    lo = max(0, step - 6)
    return values[lo : lo + 11]


async def main_async(args: argparse.Namespace) -> None:
    points = [p for p in POINTS if p <= args.steps]
    variants = [("agentkit", True)] + ([("agentkit, no run scope", False)] if args.compare else [])
    rows: dict[str, dict[int, tuple[float, int]]] = {}
    bare: dict[int, float] = {}
    for name, scope in variants:
        await agentkit_steps(50, scope)  # warm up
        best: dict[int, tuple[float, int]] = {}
        for _ in range(args.repeat if scope else 1):
            cpu, sizes = await agentkit_steps(args.steps, scope)
            for p in points:
                here = statistics.median(around(cpu, p))
                if p not in best or here < best[p][0]:
                    best[p] = (here, int(statistics.median(around(sizes, p))))
        rows[name] = best
    for p in points:
        size = rows["agentkit"][p][1]
        bare[p] = min([await bare_step(size, pieces=2 * p) for _ in range(args.repeat)])
    print(
        f"runs of {args.steps} steps over an in-memory transport, best of {args.repeat}, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        "| step | body, bytes | bare httpx, same bytes, µs | "
        + " | ".join(f"{n}, µs" for n in rows)
        + " | agentkit minus bare, µs |"
    )
    print("|---:|---:|---:|" + "---:|" * len(rows) + "---:|")
    for p in points:
        size = rows["agentkit"][p][1]
        cells = " | ".join(f"{rows[n][p][0] * 1e6:,.0f}" for n in rows)
        extra = (rows["agentkit"][p][0] - bare[p]) * 1e6
        print(f"| {p:,} | {size:,} | {bare[p] * 1e6:,.0f} | {cells} | {extra:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--compare", action="store_true", help="also run without a run scope")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is kept per point")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
