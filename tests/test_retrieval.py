from collections.abc import Sequence
from pathlib import Path

import pytest

from agentkit import ConfigurationError, Message, ToolCall
from agentkit.patterns.retrieval import (
    BM25Index,
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
from agentkit.testing import ScriptedModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GUIDE = """\
# Guide

Intro text about the library.

## Retries

A tool that raises is retried twice before the run stops.

## Streaming
### Events

Streaming yields text deltas and tool call events.

```python
# not a heading: a comment inside code
print("hello")
```
"""


def test_passages_follow_headings_and_keep_code_blocks_whole() -> None:
    passages = split_passages("docs/guide.md", GUIDE)
    assert [p.id for p in passages] == ["docs/guide.md#1", "docs/guide.md#2", "docs/guide.md#3"]
    assert passages[0].text == "# Guide\n\nIntro text about the library."
    assert passages[1].text.startswith("## Retries\n\nA tool that raises")
    # A heading without text of its own joins the next section; code comments are not headings.
    assert passages[2].text.startswith("## Streaming\n### Events\n\nStreaming yields")
    assert "# not a heading" in passages[2].text
    assert all(p.source == "docs/guide.md" for p in passages)


def test_long_sections_split_and_each_piece_keeps_its_heading() -> None:
    body = "\n\n".join(f"Paragraph {i} " + "about retries " * 40 for i in range(6))
    passages = split_passages("a.md", f"## Retries\n\n{body}", max_passage_tokens=200)
    assert len(passages) > 2
    assert all(p.text.startswith("## Retries\n\n") for p in passages)
    assert len({p.id for p in passages}) == len(passages)


def test_plain_text_splits_by_paragraphs() -> None:
    text = "\n\n".join("word " * 100 for _ in range(5))
    passages = split_passages("notes.txt", text, max_passage_tokens=150)
    assert len(passages) == 5
    assert passages[4].id == "notes.txt#5"


def make_index() -> BM25Index:
    return BM25Index.from_texts(
        {
            "a.md": "## Tools\n\nAgents call tools. A tool has a name and a schema.",
            "b.md": "## Retries\n\nA tool that fails is retried with backoff and jitter.",
            "c.md": "## Models\n\nWorkers AI serves Llama models over HTTP.",
            "d.md": "## Agents\n\nAn agent loops: request, tool calls, results, answer.",
        }
    )


def test_bm25_ranks_the_relevant_passage_first() -> None:
    index = make_index()
    found = index.search("how are failed tools retried?", k=2)
    assert found[0].id == "b.md#1"
    assert found[0].score > 0
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    # Plurals match singulars, and case does not matter.
    assert index.search("LLAMA MODEL", k=1)[0].id == "c.md#1"


def test_bm25_rare_terms_weigh_more_than_common_ones() -> None:
    index = make_index()
    # "tool" is in three passages, "jitter" in one.
    assert index.search("tool jitter", k=1)[0].id == "b.md#1"


def test_bm25_returns_only_matching_passages_and_at_most_k() -> None:
    index = make_index()
    assert index.search("quantum chromodynamics") == []
    assert index.search("the and of") == []  # stop words only
    assert len(index.search("tool agent model retry", k=3)) == 3
    with pytest.raises(ConfigurationError, match="k must be at least 1"):
        index.search("tool", k=0)


def test_index_lookup_and_duplicate_ids() -> None:
    index = make_index()
    assert len(index) == 4 and "a.md#1" in index and "z.md#1" not in index
    passage = index.get("c.md#1")
    assert passage is not None and passage.source == "c.md"
    with pytest.raises(ConfigurationError, match=r"duplicate passage id 'a\.md#1'"):
        index.add(Passage("a.md#1", "again", "a.md"))
    assert isinstance(index, Retriever)


def test_from_files_names_sources_from_the_directory(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "agents.md").write_text("# Agents\n\nThe agent loop.", encoding="utf-8")
    (docs / "sub" / "tools.txt").write_text("Tools are functions.", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")
    index = BM25Index.from_files(docs)
    assert sorted(p.id for p in index.passages) == ["docs/agents.md#1", "docs/sub/tools.txt#1"]
    single = BM25Index.from_files(docs / "agents.md")
    assert [p.id for p in single.passages] == ["agents.md#1"]
    rooted = BM25Index.from_files([docs], root=docs)
    assert "agents.md#1" in rooted
    with pytest.raises(ConfigurationError, match="no such file or directory"):
        BM25Index.from_files(tmp_path / "missing")


async def test_retrieval_tool_returns_passages_with_their_ids() -> None:
    search = retrieval_tool(make_index(), k=2)
    assert search.name == "search_documents"
    assert search.parameters["required"] == ["query"]
    assert search.parameters["properties"]["query"]["description"]
    result = await search.run({"query": "retried tool"})
    assert isinstance(result.value, SearchResults)
    assert result.value.ids[0] == "b.md#1"
    assert "[b.md#1]\n## Retries" in result.content
    assert not result.is_error
    empty = await search.run({"query": "quantum"})
    assert "No passages found" in empty.content


async def test_retrieval_tool_accepts_async_retrievers_and_cuts_long_passages() -> None:
    class Remote:
        async def search(self, query: str, k: int = 5) -> list[Passage]:
            return [Passage(f"remote#{i}", "x" * 5000, "remote") for i in range(k + 3)]

    search = retrieval_tool(Remote(), k=2, name="lookup", max_chars_per_passage=100)
    result = await search.run({"query": "anything"})
    assert result.value.ids == ["remote#0", "remote#1"]
    assert "x" * 101 not in result.content and "x" * 100 in result.content


def test_cited_ids() -> None:
    answer = (
        "Tools retry [b.md#1]. Agents loop [d.md#1, a.md#1]; see [the docs](https://x.y) "
        "and [not an id] and [b.md#1] again."
    )
    assert cited_ids(answer) == ["b.md#1", "d.md#1", "a.md#1"]
    assert cited_ids("no citations") == []


def test_check_citations_finds_unknown_ids() -> None:
    index = make_index()
    good = check_citations("Retries use backoff [b.md#1].", index)
    assert good.ok and good.valid == ["b.md#1"] and good.unknown == []
    bad = check_citations("Retries use backoff [b.md#1] [b.md#9] [1].", index)
    assert not bad.ok and bad.unknown == ["b.md#9", "1"]
    assert not check_citations("No citations at all.", index).ok
    only_seen = check_citations("[a.md#1] [c.md#1]", [Passage("a.md#1", "", "a.md")])
    assert only_seen.unknown == ["c.md#1"]


def agent_transcript_model() -> ScriptedModel:
    return ScriptedModel(
        [
            ToolCall(name="search_documents", arguments={"query": "retry failed tool"}),
            "A failing tool is retried with backoff and jitter [b.md#1].",
        ]
    )


async def test_retrieval_agent_searches_then_answers_with_valid_citations() -> None:
    index = make_index()
    model = agent_transcript_model()
    agent = retrieval_agent(model, index, k=2)
    result = await agent.run("How are failing tools retried?")
    assert check_citations(result.output, index).ok
    seen = retrieved_ids(result.messages)
    assert seen[0] == "b.md#1" and len(seen) == 2
    assert check_citations(result.output, seen).ok
    first = model.requests[0]
    system: Sequence[Message] = [m for m in first.messages if m.role == "system"]
    assert "square brackets" in system[0].content
    assert "search_documents" in system[0].content
    assert [t.name for t in first.tools] == ["search_documents"]
    # The second request shows the model the passages under their ids.
    tool_messages = [m for m in model.requests[1].messages if m.role == "tool"]
    assert "[b.md#1]" in tool_messages[0].content


def test_retrieved_ids_filters_by_tool_name() -> None:
    messages = [
        Message(role="tool", name="search_documents", content="Found\n\n[a.md#1]\ntext"),
        Message(role="tool", name="other", content="[z.md#1]\nnot a search"),
    ]
    assert retrieved_ids(messages, tool_name="search_documents") == ["a.md#1"]
    assert retrieved_ids(messages) == ["a.md#1", "z.md#1"]


def test_the_project_docs_index_and_cite() -> None:
    index = BM25Index.from_files(EXAMPLES.parent / "docs")
    best = index.search("map-reduce cost in model requests fan_in", k=1)
    assert best and best[0].id.startswith("docs/patterns.md#")
