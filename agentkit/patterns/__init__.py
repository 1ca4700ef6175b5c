"""Patterns built from the public pieces: summarization pipelines and retrieval agents.

- :mod:`agentkit.patterns.summarize`: map-reduce and refine summaries of long texts;
- :mod:`agentkit.patterns.retrieval`: a BM25 index, a search tool and an agent that cites.

Batches of agent runs live in :mod:`agentkit.jobs`; agents as tools in ``Agent.as_tool``.

The async ``summarize`` function is imported from its module,
``from agentkit.patterns.summarize import summarize``: re-exporting it here would hide the
module of the same name.
"""

from ._chunking import MAX_CONTENT_CHARS, TokenCounter, approx_tokens, split_text
from .retrieval import (
    BM25Index,
    CitationCheck,
    Passage,
    Retriever,
    SearchResults,
    check_citations,
    cited_ids,
    retrieval_agent,
    retrieval_tool,
    retrieved_ids,
    split_passages,
)
from .summarize import ChunkFailure, SummarizeError, SummaryResult, summarize_sync

__all__ = [
    "MAX_CONTENT_CHARS",
    "BM25Index",
    "ChunkFailure",
    "CitationCheck",
    "Passage",
    "Retriever",
    "SearchResults",
    "SummarizeError",
    "SummaryResult",
    "TokenCounter",
    "approx_tokens",
    "check_citations",
    "cited_ids",
    "retrieval_agent",
    "retrieval_tool",
    "retrieved_ids",
    "split_passages",
    "split_text",
    "summarize_sync",
]
