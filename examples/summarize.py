"""Summarize a multi-page document: the U.S. Constitution, bundled in examples/data/.

Offline by default, with a stand-in model that "summarizes" by keeping the first sentence of
each paragraph it is shown (so you can watch the pipeline without an account). On Workers AI
when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are set.

    python examples/summarize.py                       # map-reduce
    python examples/summarize.py --strategy refine     # sequential refine
    python examples/summarize.py --chunk-tokens 800 path/to/another.txt
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path
from typing import Any

from agentkit import Message
from agentkit.models import Model, WorkersAI
from agentkit.patterns.summarize import summarize
from agentkit.testing import FunctionModel

DATA = Path(__file__).parent / "data" / "constitution.txt"


def first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.;:])\s", text.strip(), maxsplit=1)[0].rstrip(";:")
    return sentence if len(sentence) <= 160 else sentence[:157].rstrip() + "..."


def extractive(messages: list[Message], tools: list[Any]) -> str:
    """An offline stand-in: keeps first sentences from what it is asked to summarize."""
    prompt = messages[-1].content
    if "Summary 1:" in prompt:  # combining summaries: keep at most 8 of their sentences
        parts = re.split(r"\n*Summary \d+:\n", prompt)[1:]
        sentences = [s for p in parts for s in p.split("\n") if s.strip()]
        step = max(1, -(-len(sentences) // 8))
        return "\n".join(sentences[::step])
    text = prompt.split('"""')[-2]  # the text between the quotes
    paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 8]
    return "\n".join(first_sentence(p).rstrip(".") + "." for p in paragraphs[:3])


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        return WorkersAI(rate_limit=300)
    return FunctionModel(extractive, model_name="offline-extractive")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DATA)
    parser.add_argument("--strategy", choices=["map_reduce", "refine"], default="map_reduce")
    parser.add_argument("--chunk-tokens", type=int, default=1500)
    args = parser.parse_args()

    model = make_model()
    print(f"model: {model.model_name}")
    result = await summarize(
        args.file,
        model,
        strategy=args.strategy,
        chunk_tokens=args.chunk_tokens,
        instructions="Summarize in one paragraph what this document establishes.",
    )
    print(result.summary)
    print()
    print(
        f"{result.strategy}: {result.chunks} chunks, {result.requests} requests, "
        f"{result.levels} combining levels, {result.usage.total_tokens} tokens, "
        f"{len(result.failures)} failures"
    )
    if isinstance(model, WorkersAI):
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
