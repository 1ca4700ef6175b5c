"""Requests per finished task: the repeat guard on models that repeat, and summaries per window.

An account's requests per minute (300 on Workers AI) set a job's wall time, so fewer requests
per task is time saved, whatever the CPU. Two measures, on scripted models (no network):

1. **Repeat guard.** A task needs one ``weather`` call, then the answer. Scripted models:
   - *stubborn*: repeats the identical call forever (it never answers while tools are offered);
   - *repeats 3 times*: repeats the call three times, then answers;
   - *heeds the note*: repeats the call until a tool result says it already has it, then answers.
   Each runs with ``max_steps=10`` with the guard off (``max_repeats=None``), on (the default:
   ``max_repeats=2``, then one request for the final answer) and on with ``on_repeat="raise"``. Reported: requests per run
   and whether the run finished with an answer.

2. **Summaries.** Requests to summarize 100,000 characters of English-like prose with
   map-reduce, by the fixed defaults (3,000-token chunks, fan-in 4) and sized from context
   windows of 8k, 32k and 128k tokens with ``max_tokens=600``, next to the minimum the window
   allows (formula in docs/performance.md).

Run by hand::

    python benchmarks/requests_per_task.py
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
from typing import Any

from agentkit import Agent, Message, ModelResponse, ToolCall, tool
from agentkit.errors import RunError
from agentkit.patterns._chunking import MAX_CONTENT_CHARS, approx_tokens
from agentkit.patterns.summarize import _PROMPT_RESERVE_CHARS, plan_chunks, summarize
from agentkit.settings import ModelSettings
from agentkit.testing import FunctionModel


@tool
def weather(city: str) -> str:
    """The forecast for a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


CALL = ToolCall(name="weather", arguments={"city": "Paris"})


def stubborn(messages: list[Message], tools: Any) -> Any:
    return CALL if tools else "Sunny in Paris."


def repeats_three_times(messages: list[Message], tools: Any) -> Any:
    done = sum(1 for m in messages if m.role == "tool")
    return CALL if tools and done < 4 else "Sunny in Paris."


def heeds_the_note(messages: list[Message], tools: Any) -> Any:
    last = messages[-1]
    if not tools or (last.role == "tool" and "already called" in last.content):
        return "Sunny in Paris."
    return CALL


MODELS = {
    "stubborn": stubborn,
    "repeats 3 times": repeats_three_times,
    "heeds the note": heeds_the_note,
}
POLICIES: dict[str, dict[str, Any]] = {
    "guard off": {"max_repeats": None},
    "guard on (default: final answer)": {},
    "guard on, on_repeat='raise'": {"on_repeat": "raise"},
}


async def repeat_rows() -> list[tuple[str, str, int, bool]]:
    rows = []
    for model_name, fn in MODELS.items():
        for policy, options in POLICIES.items():
            model = FunctionModel(fn, record=False)
            agent = Agent(model, tools=[weather], max_steps=10, **options)
            try:
                result = await agent.run("Weather in Paris?")
                requests, finished = result.usage.requests, True
            except RunError as exc:
                requests, finished = exc.usage.requests, False  # type: ignore[attr-defined]
            rows.append((model_name, policy, requests, finished))
    return rows


def corpus(chars: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = [
        "the", "model", "agent", "request", "summary", "text", "window", "token", "cache",
        "prefix", "account", "minute", "replica", "budget", "answer", "document",
    ]  # fmt: skip
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "."
        if rng.random() < 0.15:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)[:chars]


def minimum_requests(tokens: int, chunk_tokens: int, fan_in: int) -> int:
    """N = ceil(tokens / chunk_tokens) map requests; while more than ``fan_in`` summaries are
    left, each level combines them in groups of ``fan_in`` (a group of one passes through,
    costing nothing); then one final request. N = 1 takes one request in all."""
    n = math.ceil(tokens / chunk_tokens)
    if n == 1:
        return 1
    total, level = n, n
    while level > fan_in:
        total += level // fan_in + (1 if level % fan_in > 1 else 0)
        level = math.ceil(level / fan_in)
    return total + 1


async def summary_rows(chars: int) -> list[tuple[str, int, int, int, int]]:
    text = corpus(chars)
    tokens = approx_tokens(text)
    cap = approx_tokens(text[: MAX_CONTENT_CHARS - _PROMPT_RESERVE_CHARS])  # per-message limit

    def reply(messages: list[Message], tools: Any) -> ModelResponse:
        return ModelResponse(text="A summary. " * 40)  # about 110 tokens

    rows = []
    settings = ModelSettings(max_tokens=600)
    cases: list[tuple[str, dict[str, Any], int, int]] = [
        ("fixed defaults (3,000 tokens, fan-in 4)", {}, 3000, 4)
    ]
    for window in (8_192, 32_768, 131_072):
        chunk, fan_in = plan_chunks(window, 600)
        cases.append((f"window {window // 1024}k", {"context_window": window}, chunk, fan_in))
    for label, options, chunk, fan_in in cases:
        result = await summarize(
            text, FunctionModel(reply, record=False), settings=settings, **options
        )
        minimum = minimum_requests(tokens, min(chunk, cap), fan_in)
        rows.append((label, chunk, fan_in, result.requests, minimum))
    return rows


async def main_async() -> None:
    print(f"Python {sys.version.split()[0]}")
    print("\n| model | policy | requests | finished |")
    print("|---|---|---:|---|")
    for model_name, policy, requests, finished in await repeat_rows():
        print(f"| {model_name} | {policy} | {requests} | {'yes' if finished else 'no (error)'} |")
    for chars in (100_000, 1_000_000):
        print(f"\nSummarizing {chars:,} characters (map-reduce, max_tokens=600):\n")
        print(
            "| sizing | chunk tokens | fan-in | requests | per 100k chars | minimum by the formula |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for label, chunk, fan_in, requests, minimum in await summary_rows(chars):
            per = requests * 100_000 / chars
            print(f"| {label} | {chunk:,} | {fan_in} | {requests} | {per:.1f} | {minimum} |")


if __name__ == "__main__":
    asyncio.run(main_async())
