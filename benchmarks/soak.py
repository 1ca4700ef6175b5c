"""Soak: many multi-step runs against a local Workers AI server that injects faults.

Every run asks for two lookups and an answer (three model requests when nothing fails), half of
them streamed. The server answers each request normally or, with probability ``--fault-rate``,
with a fault drawn from every kind it can inject. Runs that fail are resumed once from their
transcript. At the end the script checks what must hold whatever the faults:

- every tool call in every transcript has exactly one result (unanswered calls: 0);
- no tool ran twice for the same step, resumes included (tools re-run: 0);
- every request body validated against the Workers AI input schema (violations: 0);
- the API token appears nowhere: logs (DEBUG), error texts, transcripts (leaks: 0).

Run by hand (a few minutes at most)::

    .venv/bin/python benchmarks/soak.py                       # 1,000 runs, 35% faults, 50 at once
    .venv/bin/python benchmarks/soak.py --runs 5000 --seed 7  # longer
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from agentkit.agent import Agent, RunResult
from agentkit.errors import AgentKitError
from agentkit.messages import Message
from agentkit.models import WorkersAI
from agentkit.testing_server import Reply, WireRequest, WireServer
from agentkit.tools import ToolContext, tool

TOKEN = "sk-soak-SECRET-9f8e7d6c5b4a3210"
CLIENT_TIMEOUT = 0.5
STALL = 1.0  # past the client timeout

# kind -> (weight, streamed requests only, reply factory given the normal reply)
FAULTS: dict[str, tuple[int, bool, Any]] = {
    "429 3040 retry-after": (4, False, lambda n: Reply.error(429, code=3040, message=f"Capacity exceeded ({TOKEN})", retry_after=0)),
    "429 no retry-after": (4, False, lambda n: Reply.error(429, message="Too many requests")),
    "500": (4, False, lambda n: Reply.error(500, message=f"internal error, auth {TOKEN}")),
    "502": (4, False, lambda n: Reply.error(502)),
    "503": (4, False, lambda n: Reply.error(503, code=3043)),
    "dropped connection": (4, False, lambda n: Reply.drop()),
    "stall past timeout": (3, False, lambda n: Reply.stalled(STALL)),
    "truncated body/stream": (4, False, lambda n: _with(n, fault="truncate", after_events=1)),
    "stream dropped mid-way": (3, True, lambda n: _with(n, fault="drop_stream", after_events=2)),
    "stream stalled mid-way": (2, True, lambda n: _with(n, fault="stall_stream", after_events=2, stall=STALL)),
    "3036 quota": (1, False, lambda n: Reply.error(429, code=3036, message=f"daily allocation used ({TOKEN})")),
    "400 5006": (1, False, lambda n: Reply.error(400, code=5006, message="oneOf at '/' not met")),
    "401": (1, False, lambda n: Reply.error(401, code=10000, message=f"Authentication error for {TOKEN}")),
    "invalid JSON": (1, False, lambda n: Reply.invalid_json()),
    "wrong content type": (1, False, lambda n: Reply.wrong_content_type()),
}  # fmt: skip


def _with(reply: Reply, **changes: Any) -> Reply:
    for name, value in changes.items():
        setattr(reply, name, value)
    return reply


def normal_reply(request: WireRequest) -> Reply:
    """Step 0: a structured call; step 1: a call written as text; step 2: the answer."""
    results = [m["content"] for m in request.messages if m["role"] == "tool"]
    if not results:
        return Reply.calls(("lookup", {"key": "a"}), chunk_chars=4)
    if len(results) == 1:
        return Reply.answer("[lookup(key='b')]", chunk_chars=5)
    return Reply.answer(f"a is {results[0]} and b is {results[1]}.", chunk_chars=4)


class FaultyServer:
    """The reply policy: normal replies, and a seeded share of faults of every kind."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.requests = 0
        self.faults: collections.Counter[str] = collections.Counter()

    def __call__(self, request: WireRequest) -> Reply:
        self.requests += 1
        reply = normal_reply(request)
        if self.random.random() >= self.rate:
            return reply
        kinds = [
            k for k, (_, stream_only, _) in FAULTS.items() if request.stream or not stream_only
        ]
        kind = self.random.choices(kinds, weights=[FAULTS[k][0] for k in kinds])[0]
        self.faults[kind] += 1
        factory: Any = FAULTS[kind][2]
        faulty: Reply = factory(reply)
        return faulty


class LeakScanner(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0
        self.leaks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        texts = [record.getMessage(), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            texts.append("".join(traceback.format_exception(record.exc_info[1])))
        if any(TOKEN in text for text in texts):
            self.leaks += 1


@dataclass
class Tally:
    runs: int = 0
    finished_first_try: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    resumed_finished: int = 0
    resumed_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    unanswered: int = 0
    rerun_tools: int = 0
    leaks_in_errors: int = 0
    leaks_in_transcripts: int = 0
    wrong_answers: int = 0


def unanswered(messages: list[Message]) -> int:
    """Calls without exactly one result (a result without its call counts too)."""
    calls = collections.Counter(c.id for m in messages for c in m.tool_calls)
    results = collections.Counter(m.tool_call_id for m in messages if m.role == "tool")
    return sum(abs(calls[k] - results[k]) for k in set(calls) | set(results))


async def one_run(agent: Agent[str], index: int, tally: Tally) -> None:
    lookups: collections.Counter[str] = collections.Counter()
    stream = index % 2 == 1
    prompt = f"run {index}: look up a and b"

    async def attempt(history: list[Message] | None) -> RunResult[str]:
        kwargs: dict[str, Any] = {"deps": lookups}
        if history is None:
            kwargs["prompt"] = prompt
        else:
            kwargs["message_history"] = history
        if not stream:
            return await agent.run(**kwargs)
        result = None
        async for event in agent.stream(**kwargs):
            result = getattr(event, "result", result)
        assert result is not None
        return result

    def check(messages: list[Message]) -> None:
        tally.unanswered += unanswered(messages)
        if any(TOKEN in m.model_dump_json() for m in messages):
            tally.leaks_in_transcripts += 1

    def check_error(exc: AgentKitError) -> None:
        text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
        if TOKEN in text:
            tally.leaks_in_errors += 1
        check(exc.messages)

    tally.runs += 1
    history: list[Message] | None = None
    try:
        result = await attempt(None)
        tally.finished_first_try += 1
    except AgentKitError as exc:
        tally.failed[type(exc).__name__] += 1
        check_error(exc)
        history = exc.messages
        try:
            result = await attempt(history)  # one resume from the failed run's transcript
            tally.resumed_finished += 1
        except AgentKitError as again:
            tally.resumed_failed[type(again).__name__] += 1
            check_error(again)
            result = None
    if result is not None:
        check(result.messages)
        if result.output != "a is A and b is B.":
            tally.wrong_answers += 1
    tally.rerun_tools += sum(n - 1 for n in lookups.values() if n > 1)


@tool
def lookup(context: ToolContext[collections.Counter[str]], key: str) -> str:
    """Look up a key.

    Args:
        key: the key to look up
    """
    context.deps[key] += 1
    return key.upper()


async def soak(runs: int, concurrency: int, rate: float, seed: int) -> None:
    policy = FaultyServer(rate, seed)
    scanner = LeakScanner()
    logger = logging.getLogger("agentkit")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(scanner)
    tally = Tally()
    started = time.perf_counter()
    with WireServer(handler=policy, api_token=TOKEN, record=False) as server:
        model = WorkersAI(
            account_id="soak",
            api_token=TOKEN,
            base_url=server.base_url,
            timeout=CLIENT_TIMEOUT,
            max_retries=3,
            backoff_base=0.01,
            backoff_max=0.05,
        )
        agent = Agent(model, [lookup], max_steps=6)
        gate = asyncio.Semaphore(concurrency)

        async def guarded(index: int) -> None:
            async with gate:
                await one_run(agent, index, tally)

        async with model:
            await asyncio.gather(*(guarded(i) for i in range(runs)))
        violations = len(server.violations)
        examples = server.violations[:3]
    wall = time.perf_counter() - started
    logger.removeHandler(scanner)

    faults = sum(policy.faults.values())
    leaks = scanner.leaks + tally.leaks_in_errors + tally.leaks_in_transcripts
    rows = [
        ("runs (half streamed)", f"{tally.runs:,}"),
        ("concurrency", str(concurrency)),
        ("requests", f"{policy.requests:,}"),
        ("faults injected", f"{faults:,} ({faults / max(policy.requests, 1):.1%} of requests)"),
        *[(f"- {kind}", f"{n:,}") for kind, n in sorted(policy.faults.items(), key=lambda kv: -kv[1])],
        ("runs finished (first try)", f"{tally.finished_first_try:,}"),
        ("runs failed", f"{sum(tally.failed.values()):,}"),
        *[(f"- {name}", f"{n:,}") for name, n in tally.failed.most_common()],
        ("failed runs resumed to the answer", f"{tally.resumed_finished:,}"),
        ("failed again on resume", ", ".join(f"{k} {v}" for k, v in tally.resumed_failed.most_common()) or "0"),
        ("wrong final answers", str(tally.wrong_answers)),
        ("calls left unanswered", str(tally.unanswered)),
        ("tools run twice (resumes included)", str(tally.rerun_tools)),
        ("schema violations", str(violations)),
        ("secrets leaked (logs, errors, transcripts)", f"{leaks} ({scanner.records:,} log records scanned)"),
        ("wall time", f"{wall:.1f} s"),
    ]  # fmt: skip
    print(f"seed {seed}, fault rate {rate:.0%}, client timeout {CLIENT_TIMEOUT} s\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if examples:
        print("\nfirst violations:", *examples, sep="\n")
    ok = tally.unanswered == 0 and violations == 0 and leaks == 0 and tally.rerun_tools == 0
    ok = ok and tally.wrong_answers == 0 and faults >= 0.3 * policy.requests
    if not ok:
        print("\nFAILED: see the table", file=sys.stderr)
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--fault-rate", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(soak(args.runs, args.concurrency, args.fault_rate, args.seed))


if __name__ == "__main__":
    main()
