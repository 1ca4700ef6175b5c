"""Answer questions from agentkit's own documentation (docs/), citing the passages used.

Offline by default, with a stand-in model that searches once and answers with the best
passage's first sentence; on Workers AI when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN
are set.

    python examples/retrieval_agent.py
    python examples/retrieval_agent.py "How does resume work in a batch?"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path
from typing import Any

from agentkit import Message, ToolCall
from agentkit.models import Model, WorkersAI
from agentkit.patterns.retrieval import (
    BM25Index,
    check_citations,
    retrieval_agent,
    retrieved_ids,
)
from agentkit.testing import FunctionModel

DOCS = Path(__file__).resolve().parent.parent / "docs"


def offline_reply(messages: list[Message], tools: list[Any]) -> str | ToolCall:
    """Search with the question, then answer with the passage sentence closest to it."""
    last = messages[-1]
    question = next(m.content for m in reversed(messages) if m.role == "user")
    if last.role == "user":
        return ToolCall(name="search_documents", arguments={"query": question})
    wanted = set(re.findall(r"\w{4,}", question.lower()))
    best: tuple[int, str, str] = (0, "", "")
    for block in re.split(r"\n\n(?=\[\S+\]\n)", last.content):
        header = re.match(r"\[(\S+)\]\n", block)
        if header is None:
            continue
        prose = re.sub(r"```.*?```", " ", block[header.end() :], flags=re.DOTALL)
        for paragraph in prose.split("\n\n"):
            if paragraph.startswith(("#", "|")):
                continue
            text = " ".join(line.strip(" -") for line in paragraph.splitlines())
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                score = len(wanted & set(re.findall(r"\w{4,}", sentence.lower())))
                if score > best[0]:
                    best = (score, sentence, header.group(1))
    if not best[0]:
        return "The documents do not say."
    return f"According to the documentation: {best[1]} [{best[2]}]"


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        return WorkersAI(rate_limit=300)
    return FunctionModel(offline_reply, model_name="offline-retrieval")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "question", nargs="?", default="How many model requests does the refine strategy cost?"
    )
    args = parser.parse_args()

    index = BM25Index.from_files(DOCS)
    model = make_model()
    print(f"model: {model.model_name}; {len(index)} passages indexed from {DOCS.name}/")
    agent = retrieval_agent(model, index, k=3)
    result = await agent.run(args.question)
    print(f"Q: {args.question}")
    print(f"A: {result.output}")

    seen = retrieved_ids(result.messages)
    check = check_citations(result.output, seen)
    print(f"passages retrieved: {', '.join(seen) or 'none'}")
    if check.ok:
        print(f"citations: ok ({', '.join(check.valid)})")
    else:
        print(f"citations: NOT ok: cited {check.cited or 'nothing'}, unknown {check.unknown}")
    print(f"requests: {result.usage.requests}, steps: {result.steps}")
    if isinstance(model, WorkersAI):
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
