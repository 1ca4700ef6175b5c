"""Prompt-cache friendliness over a 10-step run: bytes sent per step, and the unchanged prefix.

A local :class:`~agentkit.testing_server.WireServer` (in this process) answers nine ``lookup``
calls, one per step, then a text answer: ten requests per run. Each request body is recorded.
For each step: the body size, the longest byte prefix it shares with the previous request of the
run, and that prefix as a share of the body. A provider's prompt cache can only reuse a prefix
that is byte-identical, so the larger the share, the more of each request can be billed as cached
input (on Workers AI, when the run's requests reach one replica: ``x-session-affinity``, which
is also counted here).

The body's byte prefix is a proxy: the model sees the prompt its chat template renders from the
body, where tool definitions come first as in agentkit's body layout. A framework whose body puts
its tools after the messages shares less of its body but may still share the rendered prompt.

Run by hand::

    python benchmarks/prefix.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from agentkit.testing_server import Reply, WireRequest, WireServer

STEPS = 10
PROMPT = "Look up items 0 to 8, then tell me what they have in common."
ANSWER = "They are all lookups."


def lookup(key: str) -> str:
    """Look a key up in the catalogue.

    Args:
        key: The key to find.
    """
    return f"{key}: " + "a catalogue entry with a few details about the item. " * 4


def handler(request: WireRequest) -> Reply:
    done = sum(1 for m in request.messages if m.get("role") == "tool")
    if done < STEPS - 1:
        return Reply.calls(("lookup", {"key": f"item {done}"}))
    return Reply.answer(ANSWER)


async def agentkit_run(url: str, openai: bool) -> None:
    from agentkit import Agent, tool
    from agentkit.models import WorkersAI

    async with WorkersAI(account_id="acct", api_token="token", base_url=url + "/client/v4") as m:
        model: Any = m.openai() if openai else m
        agent = Agent(model, tools=[tool(lookup)], system_prompt="You answer from the catalogue.")
        result = await agent.run(PROMPT, max_steps=STEPS)
        assert result.output == ANSWER


async def pydantic_ai_run(url: str) -> None:
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = AsyncOpenAI(base_url=url + "/v1", api_key="token", max_retries=0)
    model = OpenAIChatModel("llama", provider=OpenAIProvider(openai_client=client))
    agent = Agent(model, tools=[lookup], system_prompt="You answer from the catalogue.")
    assert (await agent.run(PROMPT)).output == ANSWER
    await client.close()


async def openai_agents_run(url: str) -> None:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=url + "/v1", api_key="token", max_retries=0)
    agent = Agent(
        name="bench",
        instructions="You answer from the catalogue.",
        model=OpenAIChatCompletionsModel("llama", openai_client=client),
        tools=[function_tool(lookup)],
    )
    assert (await Runner.run(agent, PROMPT, max_turns=STEPS + 2)).final_output == ANSWER
    await client.close()


def _common(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def measure(name: str, run: Callable[[str], Awaitable[None]]) -> dict[str, Any] | None:
    with WireServer(handler=handler, validate=False) as server:
        try:
            asyncio.run(run(server.url))
        except ImportError as exc:
            print(f"skipping {name}: not installed ({exc.name})", file=sys.stderr)
            return None
        requests = list(server.requests)
    bodies = [r.raw for r in requests]
    shared = [0] + [_common(a, b) for a, b in itertools.pairwise(bodies)]
    keys = {r.headers.get("x-session-affinity") for r in requests}
    return {
        "name": name,
        "steps": len(bodies),
        "sizes": [len(b) for b in bodies],
        "shared": shared,
        "affinity": "yes, one key" if keys != {None} and len(keys) == 1 else "no",
    }


def main() -> None:
    runs: list[tuple[str, Callable[[str], Awaitable[None]]]] = [
        ("agentkit (Workers AI route)", lambda url: agentkit_run(url, openai=False)),
        ("agentkit (OpenAI route)", lambda url: agentkit_run(url, openai=True)),
        ("pydantic-ai (OpenAI route)", pydantic_ai_run),
        ("openai-agents (OpenAI route)", openai_agents_run),
    ]
    rows = [r for name, run in runs if (r := measure(name, run)) is not None]
    print(
        f"{STEPS}-step run (9 tool calls, then the answer), Python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    print(
        "\nBody bytes per step, and the share of it that repeats the previous request byte for byte:\n"
    )
    print("| step | " + " | ".join(r["name"] for r in rows) + " |")
    print("|---:|" + "---:|" * len(rows))
    for step in range(max(r["steps"] for r in rows)):
        cells = []
        for r in rows:
            if step >= r["steps"]:
                cells.append("-")
                continue
            size, shared = r["sizes"][step], r["shared"][step]
            cells.append(f"{size:,} B, {shared / size:.0%}")
        print(f"| {step + 1} | " + " | ".join(cells) + " |")
    print(
        "\n| framework | requests | bytes sent | bytes repeating the previous request | prefix share, steps 2+ | x-session-affinity |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        total, shared = sum(r["sizes"]), sum(r["shared"])
        later = sum(r["sizes"][1:])
        print(
            f"| {r['name']} | {r['steps']} | {total:,} | {shared:,} | {shared / later:.0%} | {r['affinity']} |"
        )


if __name__ == "__main__":
    main()
