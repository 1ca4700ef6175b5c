"""Summaries stay within the Workers AI content limit, and a file name given as text is flagged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from agentkit import Message
from agentkit.patterns import MAX_CONTENT_CHARS
from agentkit.patterns.summarize import summarize
from agentkit.testing import FunctionModel


def document(chunks: int, chars_per_chunk: int = 100_000) -> str:
    """A text that splits into ``chunks`` chunks of about ``chars_per_chunk`` characters."""
    paragraph = "The committee met again and voted on the budget for the year. " * 40
    per_chunk = chars_per_chunk // len(paragraph)
    return "\n\n".join(paragraph.strip() for _ in range(chunks * per_chunk))


def verbose_model(summary_chars: int) -> tuple[FunctionModel, list[str]]:
    """A model whose every summary is ``summary_chars`` long; records the prompts."""
    prompts: list[str] = []

    def reply(messages: list[Message], tools: list[Any]) -> str:
        prompts.append(messages[-1].content)
        return ("A long summary sentence. " * (summary_chars // 25 + 1))[:summary_chars]

    return FunctionModel(reply), prompts


@pytest.mark.parametrize("strategy", ["map_reduce", "refine"])
async def test_no_request_exceeds_the_content_limit_even_with_long_summaries(
    strategy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Big chunks and summaries of 60,000 characters: two summaries, or a summary and the
    # next chunk, would not fit one message without cutting.
    model, prompts = verbose_model(60_000)
    with caplog.at_level(logging.WARNING, logger="agentkit.summarize"):
        result = await summarize(
            document(3), model, strategy=strategy, chunk_tokens=40_000, progress=False
        )
    assert result.chunks == 3 and result.ok
    assert len(prompts) >= 3
    longest = max(len(p) for p in prompts)
    assert longest <= MAX_CONTENT_CHARS, longest
    assert "cut to" in caplog.text  # the user learns that summaries were shortened
    if strategy == "map_reduce":
        assert "Summary 1:" in prompts[-1]  # the final request still combines them all


async def test_combining_groups_respect_the_character_budget() -> None:
    # Ten short documents summarized in 30,000 characters each: by tokens (40,000) and fan_in
    # (8) five summaries would go together, but only three fit one message.
    model, prompts = verbose_model(30_000)
    texts = [f"Report {i}: the committee met and voted on the budget." for i in range(10)]
    result = await summarize(texts, model, chunk_tokens=40_000, fan_in=8, progress=False)
    assert result.chunks == 10 and result.levels >= 2
    combining = [p for p in prompts if "Summary 1:" in p]
    assert all(len(p) <= MAX_CONTENT_CHARS for p in combining)
    assert all(p.count("\nSummary ") <= 3 for p in combining)


async def test_a_string_naming_a_file_is_summarized_as_text_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The meeting moved to Tuesday.", encoding="utf-8")
    model, prompts = verbose_model(20)
    with caplog.at_level(logging.WARNING, logger="agentkit.summarize"):
        await summarize(str(notes), model, progress=False)
    assert "pass Path(" in caplog.text
    assert "Tuesday" not in prompts[0]  # the string itself was summarized, as documented

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentkit.summarize"):
        await summarize(notes, model, progress=False)
        await summarize("The meeting moved to Tuesday.", model, progress=False)
    assert "pass Path(" not in caplog.text
    assert "Tuesday" in prompts[1]
