"""Classify the sentiment of product reviews in a batch, saving results as they finish.

Offline by default, with a stand-in model that looks for a few telling words; on Workers AI
when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are set.

    python examples/batch.py                        # results in a temporary file
    python examples/batch.py -o results.jsonl --resume

The same agent from the command line:

    agentkit batch examples/batch.py:agent examples/data/reviews.jsonl -o results.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from agentkit import Message
from agentkit.agent import Agent
from agentkit.jobs import read_results, run_batch
from agentkit.models import Model, WorkersAI
from agentkit.settings import ModelSettings
from agentkit.testing import FunctionModel

REVIEWS = Path(__file__).parent / "data" / "reviews.jsonl"
POSITIVE = ("love", "great", "excellent", "best", "bright", "quiet")
NEGATIVE = ("stopped", "broken", "damaged", "terrible", "returned", "never")


def offline_reply(messages: list[Message], tools: list[Any]) -> str:
    review = messages[-1].content.lower()
    score = sum(w in review for w in POSITIVE) - sum(w in review for w in NEGATIVE)
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        return WorkersAI(rate_limit=300)
    return FunctionModel(offline_reply, model_name="offline-sentiment")


agent = Agent(
    make_model(),
    system_prompt=(
        "Classify the sentiment of the product review you are given. "
        "Answer with exactly one word: positive, negative or neutral."
    ),
    settings=ModelSettings(max_tokens=5, temperature=0),
    max_steps=1,
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        output = args.output or Path(scratch) / "results.jsonl"
        report = await run_batch(
            agent,
            REVIEWS,
            output=output,
            concurrency=args.concurrency,
            resume=args.resume,
            overwrite=not args.resume,
        )
        results = read_results(output)
        for review_id, record in sorted(results.items(), key=lambda item: str(item[0])):
            answer = record["output"] if record["error"] is None else f"ERROR {record['error']}"
            print(f"{review_id}: {str(answer).strip().lower():<9} {record['input']}")
        counts = Counter(str(r["output"]).strip().lower() for r in results.values())
        print(
            f"\n{report.succeeded} succeeded, {report.failed} failed, {report.skipped} skipped; "
            f"{report.usage.requests} requests; totals: {dict(sorted(counts.items()))}"
        )
        print(f"results: {output if args.output else '(temporary file, removed)'}")
    if isinstance(agent.model, WorkersAI):
        await agent.model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
