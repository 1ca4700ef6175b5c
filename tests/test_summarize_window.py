"""Summaries sized from the model's context window: the fewest requests the window allows."""

from __future__ import annotations

import pytest
from test_summarize import FakeModel, kinds, sections

from agentkit import ConfigurationError
from agentkit.patterns.summarize import plan_chunks, summarize
from agentkit.settings import ModelSettings


def test_plan_fills_the_window_after_the_reply_and_the_running_summary() -> None:
    assert plan_chunks(8192, 600) == (8192 - 1200 - 512, (8192 - 1200 - 512) // 600)
    assert plan_chunks(2000, 400)[1] == 2  # a combining request takes at least two summaries
    with pytest.raises(ConfigurationError, match=r"lower settings\.max_tokens"):
        plan_chunks(1500, 600)


async def test_a_larger_window_takes_fewer_requests() -> None:
    text = sections(60, words=60)  # about 4,800 words, 6,400 estimated tokens
    small, large = FakeModel(), FakeModel()
    settings = ModelSettings(max_tokens=200)
    by_default = await summarize(text, small, settings=settings)
    by_window = await summarize(text, large, settings=settings, context_window=8192)
    assert by_default.chunks > 1
    assert by_window.chunks == 1 and kinds(large) == ["single"]
    assert by_window.requests < by_default.requests
    assert by_window.summary == by_default.summary  # every section is covered either way


async def test_the_window_comes_from_the_model_and_explicit_sizes_win() -> None:
    model = FakeModel()
    model.context_window = 16384  # type: ignore[attr-defined]
    settings = ModelSettings(max_tokens=300)
    result = await summarize(sections(60, words=60), model, settings=settings)
    assert (result.chunks, result.requests) == (1, 1)
    explicit = await summarize(
        sections(60, words=60), model, settings=settings, chunk_tokens=500, fan_in=3
    )
    assert explicit.chunks > 10
    assert "Summary 4" not in model.prompts[-1]  # fan_in=3 was kept, not the window's
