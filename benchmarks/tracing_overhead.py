"""What hooks and tracing cost per step, in-process.

The task of ``overhead.py`` (three steps with one sync tool call each, then an answer, from an
in-process fake model) runs under each configuration:

- ``off``: no hooks, no tracing (what every agent pays by default);
- ``hooks``: one hook object with all six methods, doing nothing;
- ``otel-api``: ``instrument=True`` with the OpenTelemetry API alone (no SDK: spans are
  non-recording, as in an application that installed the extra but set up no SDK);
- ``otel-sdk``: the SDK's ``TracerProvider`` with a span processor that exports nowhere;
- ``otel-content``: the same with ``include_content=True``.

Reported: CPU µs per model step (best of ``--repeat``), and the difference to ``off``.
``--only off`` imports nothing of hooks or tracing, so the same command run against another
checkout (``PYTHONPATH=/path/to/other/tree``) compares the default path of two versions.

Run by hand::

    pip install -e ".[test]"          # the SDK comes with the test extra
    python benchmarks/tracing_overhead.py --runs 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

CALLS_PER_RUN = 3
STEPS_PER_RUN = CALLS_PER_RUN + 1
ANSWER = "The sum is 6."
CONFIGS = ("off", "hooks", "otel-api", "otel-sdk", "otel-content")


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def _options(config: str) -> dict[str, Any]:
    if config == "off":
        return {}
    if config == "hooks":
        from agentkit import Hooks

        class Quiet(Hooks):  # every method defined, each doing nothing
            pass

        return {"hooks": Quiet()}
    if config == "otel-api":
        return {"instrument": True}
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from agentkit.tracing import Instrumentation

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Nowhere()))
    return {"instrument": Instrumentation(provider, include_content=config == "otel-content")}


def make_run(config: str) -> Callable[[], Awaitable[str]]:
    from agentkit import Agent, ModelResponse, ToolCall, tool
    from agentkit.testing import FunctionModel

    def reply(messages: Any, tools: Any) -> ModelResponse:
        done = sum(1 for m in messages if m.role == "tool")
        if done < CALLS_PER_RUN:
            return ModelResponse(tool_calls=[ToolCall(name="add", arguments={"a": done, "b": 1})])
        return ModelResponse(text=ANSWER)

    # blocking=False: always on the event loop, so a preempted call cannot move the tool to
    # worker threads in one configuration and not in another.
    agent = Agent(FunctionModel(reply), tools=[tool(add, blocking=False)], **_options(config))

    async def run_once() -> str:
        result = await agent.run("Add some numbers.")
        return str(result.output)

    return run_once


async def measure(configs: tuple[str, ...], runs: int, repeat: int) -> dict[str, float]:
    """CPU µs per model step per configuration: the best of ``repeat`` rounds of ``runs``
    sequential runs, the configurations taking turns so that drift hits them all alike."""
    run_once = {config: make_run(config) for config in configs}
    for run in run_once.values():
        for _ in range(50):  # warm up: imports, caches, the inline-tool switch
            assert await run() == ANSWER
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(repeat):
        for config, run in run_once.items():
            gc.collect()
            start = time.process_time()
            for _ in range(runs):
                await run()
            best[config] = min(best[config], time.process_time() - start)
    return {config: cpu / (runs * STEPS_PER_RUN) * 1e6 for config, cpu in best.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=CONFIGS, action="append")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = await measure(tuple(args.only or CONFIGS), args.runs, args.repeat)
    rows = [{"config": config, "us_per_step": us} for config, us in results.items()]
    base = next((r["us_per_step"] for r in rows if r["config"] == "off"), None)
    if args.json:
        print(json.dumps(rows))
        return
    print(
        f"python {platform.python_version()}, {args.runs} runs x {STEPS_PER_RUN} steps, best of {args.repeat}"
    )
    print(f"{'config':<14}{'µs/step':>10}{'vs off':>10}")
    for row in rows:
        extra = "" if base is None else f"{row['us_per_step'] - base:+10.1f}"
        print(f"{row['config']:<14}{row['us_per_step']:>10.1f}{extra}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
