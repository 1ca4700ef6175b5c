"""Citations as small models write them are found and checked against what was retrieved."""

from __future__ import annotations

from agentkit.patterns.retrieval import BM25Index, check_citations, cited_ids


def test_labelled_citations_are_read_as_ids() -> None:
    answer = (
        "Refine is sequential [Source: docs/patterns.md#3]. It costs n requests "
        "[sources: docs/patterns.md#4, id: docs/patterns.md#5] [ID:docs/agents.md#1]."
    )
    assert cited_ids(answer) == [
        "docs/patterns.md#3",
        "docs/patterns.md#4",
        "docs/patterns.md#5",
        "docs/agents.md#1",
    ]
    assert cited_ids("[Note: refine is slow] and [see the docs]") == []


def test_a_labelled_invented_id_is_reported_unknown() -> None:
    index = BM25Index.from_texts({"guide.md": "# Retries\n\nTools are retried twice."})
    check = check_citations("Twice [Source: guide.md#1], or so [Source: guide.md#9].", index)
    assert check.valid == ["guide.md#1"]
    assert check.unknown == ["guide.md#9"]
    assert not check.ok
