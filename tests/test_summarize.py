import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentkit import AuthenticationError, ConfigurationError, Message, ModelResponse, Usage
from agentkit.messages import ModelEvent, ResponseDone
from agentkit.patterns.summarize import SummarizeError, summarize, summarize_sync
from agentkit.settings import ModelSettings

Reply = str | BaseException
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class FakeModel:
    """Implements the Model protocol; ``reply(prompt)`` decides each answer."""

    def __init__(self, reply: Callable[[str], Reply] | None = None) -> None:
        self.reply = reply or summary_of
        self.prompts: list[str] = []
        self.settings: list[ModelSettings | None] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def model_name(self) -> str:
        return "fake"

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Any],
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        assert not tools
        assert messages[0].role == "system"
        prompt = messages[-1].content
        self.prompts.append(prompt)
        self.settings.append(settings)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        answer = self.reply(prompt)
        if isinstance(answer, BaseException):
            raise answer
        return ModelResponse(
            text=answer,
            usage=Usage(requests=1, prompt_tokens=10, completion_tokens=2, total_tokens=12),
        )

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Any],
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        yield ResponseDone(await self.request(messages, tools, settings))


def tags(prompt: str) -> list[str]:
    return re.findall(r"<[a-z]\d+>", prompt)


def summary_of(prompt: str) -> str:
    """A deterministic 'summary': the tags of every section the prompt covers."""
    return " ".join(tags(prompt))


def sections(n: int, words: int = 40) -> str:
    return "\n\n".join(f"<s{i}> " + "filler " * words for i in range(n))


def kinds(model: FakeModel) -> list[str]:
    out = []
    for p in model.prompts:
        if p.startswith("Summarize the following text"):
            out.append("map")
        elif "Merge them" in p:
            out.append("reduce")
        elif "write the summary of the whole text" in p:
            out.append("final")
        elif p.startswith("Here is a summary"):
            out.append("refine")
        else:
            out.append("single")
    return out


async def test_short_text_takes_one_request() -> None:
    model = FakeModel()
    result = await summarize("<s0> A short text.", model)
    assert result.summary == "<s0>"
    assert (result.chunks, result.requests, result.levels) == (1, 1, 0)
    assert kinds(model) == ["single"]


async def test_map_reduce_covers_every_chunk_then_combines_once() -> None:
    model = FakeModel()
    result = await summarize(sections(4), model, chunk_tokens=100, fan_in=4)
    assert result.chunks == 4
    assert kinds(model) == ["map"] * 4 + ["final"]
    assert result.requests == 5 and result.usage.requests == 5
    assert result.usage.total_tokens == 5 * 12
    assert result.summary == "<s0> <s1> <s2> <s3>"
    assert result.chunk_summaries == ["<s0>", "<s1>", "<s2>", "<s3>"]
    assert result.ok and result.levels == 1


async def test_map_reduce_recurses_until_summaries_fit() -> None:
    model = FakeModel()
    result = await summarize(sections(10), model, chunk_tokens=100, fan_in=2)
    # 10 chunks -> groups of 2 -> 5 summaries -> [2,2,1] -> 3 -> [2,1] -> 2 -> final.
    assert kinds(model) == ["map"] * 10 + ["reduce"] * 5 + ["reduce"] * 2 + ["reduce"] + ["final"]
    assert result.requests == 19
    assert result.levels == 4
    assert result.summary == " ".join(f"<s{i}>" for i in range(10))
    for prompt in model.prompts[10:]:
        assert prompt.count("Summary ") <= 2


async def test_reduce_groups_respect_the_token_budget() -> None:
    # Long summaries: only two fit the budget at once, whatever fan_in allows.
    model = FakeModel(lambda p: summary_of(p) + " words" * 45)
    result = await summarize(
        sections(6, words=90), model, chunk_tokens=100, fan_in=10, counter=lambda s: len(s.split())
    )
    combine_prompts = [p for p, k in zip(model.prompts, kinds(model), strict=True) if k != "map"]
    assert result.levels >= 2
    assert result.chunks == 6
    assert all(p.count("Summary ") == 2 for p in combine_prompts)
    assert set(tags(result.summary)) == {f"<s{i}>" for i in range(6)}


async def test_chunks_respect_chunk_tokens_and_never_span_documents() -> None:
    model = FakeModel()

    def count_words(s: str) -> int:
        return len(s.split())

    docs = [sections(3, words=60), sections(2, words=60).replace("<s", "<t")]
    result = await summarize(docs, model, chunk_tokens=100, counter=count_words)
    maps = [p for p, k in zip(model.prompts, kinds(model), strict=True) if k == "map"]
    assert len(maps) == result.chunks == 5
    for prompt in maps:
        chunk = prompt.split('"""')[1]
        assert count_words(chunk) <= 100
        assert not (tags(chunk)[0].startswith("<s") and "<t" in chunk)
    assert "part 1 of 3 of document 1" in maps[0]
    assert "part 2 of 2 of document 2" in maps[4]


async def test_files_are_read_and_named(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(sections(2), encoding="utf-8")
    (tmp_path / "b.md").write_text("<x9> the second file", encoding="utf-8")
    model = FakeModel()
    result = await summarize([tmp_path / "a.txt", tmp_path / "b.md"], model, chunk_tokens=100)
    assert result.summary == "<s0> <s1> <x9>"
    assert any("b.md" in p for p in model.prompts)


async def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read .*nope\.txt"):
        await summarize([tmp_path / "nope.txt"], FakeModel())


async def test_concurrency_is_limited() -> None:
    model = FakeModel()
    await summarize(sections(8), model, chunk_tokens=100, max_concurrency=3)
    assert model.max_in_flight == 3


async def test_refine_is_sequential_and_carries_the_summary_forward() -> None:
    model = FakeModel()
    result = await summarize(sections(4), model, strategy="refine", chunk_tokens=100)
    assert kinds(model) == ["map", "refine", "refine", "refine"]
    assert model.max_in_flight == 1
    assert result.requests == 4
    assert '"""\n<s0> <s1>\n"""' in model.prompts[2]  # the running summary so far
    assert result.summary == "<s0> <s1> <s2> <s3>"
    assert result.chunk_summaries[-1] == result.summary


async def test_a_failed_chunk_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentkit.patterns.summarize._RETRY_BASE_DELAY", 0)
    failed: set[str] = set()

    def flaky(prompt: str) -> Reply:
        if "<s2>" in prompt and "<s2>" not in failed:
            failed.add("<s2>")
            return RuntimeError("boom")
        return summary_of(prompt)

    model = FakeModel(flaky)
    result = await summarize(sections(4), model, chunk_tokens=100)
    assert result.ok
    assert result.requests == 4 + 1 + 1
    assert result.summary == "<s0> <s1> <s2> <s3>"


async def test_a_chunk_that_keeps_failing_is_reported_and_the_others_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agentkit.patterns.summarize._RETRY_BASE_DELAY", 0)

    def broken(prompt: str) -> Reply:
        return RuntimeError("chunk two is cursed") if "<s2>" in prompt else summary_of(prompt)

    model = FakeModel(broken)
    with pytest.raises(SummarizeError) as info:
        await summarize(sections(5), model, chunk_tokens=100, retries=2)
    error = info.value
    assert [(f.stage, f.index, f.attempts) for f in error.failures] == [("map", 2, 3)]
    assert "chunk 2" in str(error) and "chunk two is cursed" in str(error)
    assert "on_failure='skip'" in str(error)
    assert error.result.chunk_summaries == ["<s0>", "<s1>", None, "<s3>", "<s4>"]
    assert error.result.requests == 4 + 3
    assert error.usage is not None and error.usage.requests == 7


async def test_on_failure_skip_summarizes_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentkit.patterns.summarize._RETRY_BASE_DELAY", 0)

    def broken(prompt: str) -> Reply:
        return "" if "<s1>" in prompt else summary_of(prompt)  # empty replies count as failures

    result = await summarize(sections(3), FakeModel(broken), chunk_tokens=100, on_failure="skip")
    assert result.summary == "<s0> <s2>"
    assert not result.ok
    assert result.failures[0].index == 1
    assert "empty summary" in str(result.failures[0].error)


async def test_refine_reports_the_failed_chunk_with_the_summary_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agentkit.patterns.summarize._RETRY_BASE_DELAY", 0)

    def broken(prompt: str) -> Reply:
        return RuntimeError("no") if "<s2>" in prompt else summary_of(prompt)

    with pytest.raises(SummarizeError) as info:
        await summarize(sections(4), FakeModel(broken), strategy="refine", chunk_tokens=100)
    assert info.value.result.summary == "<s0> <s1>"
    assert info.value.failures[0].stage == "refine"
    assert info.value.failures[0].index == 2

    skipped = await summarize(
        sections(4), FakeModel(broken), strategy="refine", chunk_tokens=100, on_failure="skip"
    )
    assert skipped.summary == "<s0> <s1> <s3>"


async def test_errors_no_retry_can_fix_stop_at_once() -> None:
    def denied(prompt: str) -> Reply:
        return AuthenticationError("bad token", status=401, code=10000)

    model = FakeModel(denied)
    with pytest.raises(SummarizeError) as info:
        await summarize(sections(6), model, chunk_tokens=100, max_concurrency=1)
    assert isinstance(info.value.__cause__, AuthenticationError)
    assert "No retry can fix this" in str(info.value)
    assert len(model.prompts) == 1


async def test_settings_are_passed_and_default_to_short_summaries() -> None:
    model = FakeModel()
    await summarize("<s0> text", model)
    settings = model.settings[0]
    assert settings is not None and settings.max_tokens == 600
    await summarize("<s0> text", model, settings=ModelSettings(max_tokens=50, temperature=0.1))
    assert model.settings[1] == ModelSettings(max_tokens=50, temperature=0.1)


async def test_instructions_reach_the_final_request() -> None:
    model = FakeModel()
    await summarize(sections(3), model, chunk_tokens=100, instructions="Use three bullet points.")
    assert "Use three bullet points." in model.prompts[-1]
    assert all("Use three bullet points." in p for p in model.prompts)


async def test_messages_stay_within_the_workers_ai_content_limit() -> None:
    model = FakeModel(lambda p: "ok")
    text = "\n\n".join(["Many words here. " * 500] * 40)  # about 340,000 characters
    result = await summarize(text, model, chunk_tokens=10**7, counter=lambda s: 1)
    assert result.chunks > 1
    assert all(len(p) <= 131_072 for p in model.prompts)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("strategy", "stuff", "unknown strategy 'stuff'"),
        ("chunk_tokens", 10, "chunk_tokens must be at least 100"),
        ("fan_in", 1, "fan_in must be at least 2"),
        ("max_concurrency", 0, "max_concurrency must be at least 1"),
        ("on_failure", "ignore", "on_failure must be"),
    ],
)
async def test_invalid_options_are_rejected(option: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        await summarize("text", FakeModel(), **{option: value})


async def test_empty_input_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="nothing to summarize"):
        await summarize(["", "  \n"], FakeModel())


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    summarize_sync(sections(3), FakeModel(), chunk_tokens=100)
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    summarize_sync(sections(3), FakeModel(), chunk_tokens=100, progress=True)
    err = capsys.readouterr().err
    assert "summarizing" in err and "4/4" in err


def test_sync_twin_returns_the_same_result() -> None:
    result = summarize_sync(sections(2), FakeModel(), chunk_tokens=100)
    assert result.summary == "<s0> <s1>"


def test_over_the_workers_ai_wire_with_a_server_error_retried_beneath() -> None:
    from agentkit.models import WorkersAI
    from agentkit.testing_server import Reply, WireServer

    calls = 0

    def handler(request: Any) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 2:
            return Reply(status=500, error_code=7000, error_message="try again")
        return Reply.answer(summary_of(request.messages[-1]["content"]))

    with (
        WireServer(handler=handler) as server,
        WorkersAI(
            account_id="acct",
            api_token="tok-0123456789",
            base_url=server.base_url,
            backoff_base=0.01,
        ) as model,
    ):
        result = summarize_sync(sections(8), model, chunk_tokens=100, fan_in=3)
    assert result.summary == " ".join(f"<s{i}>" for i in range(8))
    assert result.requests == 8 + 3 + 1  # the client's own retry is beneath summarize
    assert len(server.requests) == result.requests + 1
    assert server.violations == []
