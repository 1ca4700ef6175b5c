"""Summarize texts of any length with a small model: map-reduce or refine.

Only the :class:`~agentkit.models.base.Model` protocol is used (plain requests, no tools), so any
backend works, including the offline test models.

- ``map_reduce``: every chunk is summarized independently (concurrently, at most
  ``max_concurrency`` requests at a time), then the summaries are combined ``fan_in`` at a time,
  level after level, until they fit one request, which writes the final summary.
- ``refine``: the chunks are read in order and a running summary is rewritten with each one.
  Sequential, so slower, but each step sees what came before.

Failures: each request that fails (an error, or an empty reply) is retried up to ``retries``
times. A chunk that still fails is recorded as a :class:`ChunkFailure` with its index and
source; the other chunks are still summarized. With ``on_failure="raise"`` (the default) a
:class:`SummarizeError` is then raised carrying the partial :class:`SummaryResult` (the
summaries of every chunk that succeeded); with ``on_failure="skip"`` the summary is written from
the chunks that succeeded and the failures are listed in ``SummaryResult.failures``. Errors that
no retry can fix (bad credentials, no such model, daily quota used up) stop the work at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._progress import Progress
from .._sync import run_sync
from ..errors import (
    JOB_FATAL_ERRORS,
    AgentKitError,
    BadRequestError,
    ConfigurationError,
    ModelResponseError,
    RequestTooLargeError,
)
from ..messages import Message, Usage
from ..models.base import Model
from ..settings import ModelSettings
from ._chunking import MAX_CONTENT_CHARS, TokenCounter, approx_tokens, split_text

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "ChunkFailure",
    "Strategy",
    "SummarizeError",
    "SummaryResult",
    "plan_chunks",
    "summarize",
    "summarize_sync",
]

logger = logging.getLogger("agentkit.summarize")

Strategy = Literal["map_reduce", "refine"]
Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

DEFAULT_INSTRUCTIONS = "Write a clear summary of the whole text in one to three paragraphs."
DEFAULT_SETTINGS = ModelSettings(max_tokens=600)

#: Room left in each request for the prompt around a chunk (and, for refine, the summary).
_PROMPT_RESERVE_CHARS = 16_384
#: The most characters of summaries (or, for refine, of the running summary and the next
#: chunk) one request may carry; longer ones are cut so a request never exceeds the limit.
_CONTENT_BUDGET_CHARS = MAX_CONTENT_CHARS - _PROMPT_RESERVE_CHARS
#: Tokens kept in each request for the instructions and framing around a chunk.
_PROMPT_RESERVE_TOKENS = 512
#: ``chunk_tokens`` and ``fan_in`` when neither they nor a context window are given.
_DEFAULT_CHUNK_TOKENS = 3000
_DEFAULT_FAN_IN = 4
#: Seconds to wait before retry ``n`` (1-based) of a failed request: 0.25, 0.5, 1, ...
_RETRY_BASE_DELAY = 0.25

_SYSTEM = (
    "You write accurate, concise summaries. Use only information from the text you are given; "
    "never add facts. Reply with the summary only."
)
_NOT_RETRIED = (BadRequestError, RequestTooLargeError)


@dataclass(frozen=True)
class ChunkFailure:
    """One piece of work that failed after its retries.

    ``stage`` is ``"map"`` or ``"refine"`` for a chunk of the input (``index`` is the chunk's
    0-based position, ``source`` its document), ``"reduce"`` or ``"final"`` for a request that
    combined summaries (``index`` is the group's position in its level).
    """

    stage: str
    index: int
    source: str
    attempts: int
    error: BaseException

    def __str__(self) -> str:
        return (
            f"{self.stage} chunk {self.index} ({self.source}) failed after "
            f"{self.attempts} attempt(s): {type(self.error).__name__}: {self.error}"
        )


@dataclass
class SummaryResult:
    """What :func:`summarize` produced.

    ``summary`` is the final text ("" when the work stopped early); ``chunks`` the number of
    chunks the input was split into; ``chunk_summaries`` the summary of each chunk in order
    (``None`` where the chunk failed; for refine, the running summary after each chunk);
    ``requests`` the model requests made, retries included; ``usage`` the tokens they used;
    ``levels`` the combining levels of map-reduce (0 when one request was enough).
    """

    summary: str
    strategy: Strategy
    chunks: int
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    failures: list[ChunkFailure] = field(default_factory=list)
    chunk_summaries: list[str | None] = field(default_factory=list)
    levels: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures


class SummarizeError(AgentKitError):
    """Summarizing failed; ``result`` holds everything that succeeded before or besides it.

    ``failures`` lists what failed (also ``result.failures``). The summaries of the chunks that
    succeeded are in ``result.chunk_summaries``.
    """

    def __init__(self, message: str, *, result: SummaryResult) -> None:
        super().__init__(message)
        self.result = result
        self.usage = result.usage

    @property
    def failures(self) -> list[ChunkFailure]:
        return self.result.failures


@dataclass(frozen=True)
class _Chunk:
    index: int
    text: str
    source: str
    part: int  # 1-based position within its document
    parts: int  # number of chunks of its document


class _Fatal(Exception):
    """Internal: an error no retry can fix; carries the original."""

    def __init__(self, original: BaseException, requests: int = 0) -> None:
        super().__init__(str(original))
        self.original = original
        self.requests = requests


@dataclass
class Answer:
    """What one summary request (with its retries) gave: ``text`` or ``failure``.

    Durable summaries record it as one step (:mod:`agentkit.durable`).
    """

    text: str | None
    requests: int
    usage: Usage
    failure: ChunkFailure | None = None


#: Runs one summary request with its retries: ``(attempts, prompt, stage, index, source)``.
#: The default calls ``attempts`` directly; a durable summary records each call as a step.
AskStep = Callable[
    [Callable[[str, str, int, str], Awaitable[Answer]], str, str, int, str], Awaitable[Answer]
]


class _Run:
    """The state of one summarize call."""

    def __init__(
        self,
        model: Model,
        *,
        settings: ModelSettings,
        max_concurrency: int,
        retries: int,
        instructions: str | None,
        progress: Progress,
        result: SummaryResult,
        step: AskStep | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.retries = retries
        self.instructions = instructions
        self.progress = progress
        self.result = result
        self.stopped: BaseException | None = None
        self.step = step

    async def ask(self, prompt: str, *, stage: str, index: int, source: str) -> str | None:
        """One summary request with retries; ``None`` (and a recorded failure) if it fails."""
        try:
            if self.step is None:
                answer = await self.attempts(prompt, stage, index, source)
            else:
                answer = await self.step(self.attempts, prompt, stage, index, source)
        except _Fatal as fatal:
            self.result.requests += fatal.requests
            raise
        result = self.result
        result.requests += answer.requests
        result.usage = result.usage + answer.usage
        if answer.failure is not None:
            result.failures.append(answer.failure)
        self.progress.advance()
        return answer.text

    async def attempts(self, prompt: str, stage: str, index: int, source: str) -> Answer:
        """The attempts of one request; changes nothing but ``stopped`` (what it made is returned)."""
        messages = [Message.system(_SYSTEM), Message.user(prompt)]
        attempts = requests = 0
        usage = Usage()
        error: BaseException | None = None
        while attempts <= self.retries:
            if attempts:
                await asyncio.sleep(_RETRY_BASE_DELAY * 2 ** (attempts - 1))
            attempts += 1
            async with self.semaphore:
                if self.stopped is not None:
                    raise _Fatal(self.stopped, requests)
                requests += 1
                try:
                    response = await self.model.request(messages, [], self.settings)
                except JOB_FATAL_ERRORS as exc:
                    self.stopped = exc
                    raise _Fatal(exc, requests) from exc
                except Exception as exc:
                    error = exc
                    logger.warning(
                        "%s chunk %d (%s), attempt %d failed: %s: %s",
                        stage,
                        index,
                        source,
                        attempts,
                        type(exc).__name__,
                        exc,
                    )
                    if isinstance(exc, _NOT_RETRIED):
                        break
                    continue
            usage = usage + response.usage
            text = (response.text or "").strip()
            if text:
                if response.finish_reason == "length":
                    logger.warning(
                        "%s chunk %d (%s): the summary was cut at max_tokens=%s; raise "
                        "settings.max_tokens or lower chunk_tokens",
                        stage,
                        index,
                        source,
                        self.settings.max_tokens,
                    )
                return Answer(text, requests, usage)
            error = ModelResponseError("the model replied with an empty summary")
            logger.warning(
                "%s chunk %d (%s): empty reply (attempt %d)", stage, index, source, attempts
            )
        assert error is not None
        failure = ChunkFailure(
            stage=stage, index=index, source=source, attempts=attempts, error=error
        )
        return Answer(None, requests, usage, failure)

    # prompts ------------------------------------------------------------------------------

    def _guidance(self) -> str:
        if self.instructions:
            return f"\nThe final summary should follow these instructions: {self.instructions}"
        return ""

    def chunk_prompt(self, chunk: _Chunk) -> str:
        where = f"part {chunk.part} of {chunk.parts} of {chunk.source}"
        return (
            f"Summarize the following text ({where}). Keep the names, numbers, dates and events "
            f'that matter.{self._guidance()}\n\nText:\n"""\n{chunk.text}\n"""'
        )

    def single_prompt(self, text: str) -> str:
        return f'{self.instructions or DEFAULT_INSTRUCTIONS}\n\nText:\n"""\n{text}\n"""'

    def combine_prompt(self, summaries: Sequence[str], *, final: bool) -> str:
        share = _CONTENT_BUDGET_CHARS // len(summaries) - 16
        if sum(len(s) for s in summaries) > _CONTENT_BUDGET_CHARS:
            logger.warning(
                "%d summaries are too long to combine in one request (%d characters); each is "
                "cut to %d characters: lower settings.max_tokens or fan_in",
                len(summaries),
                sum(len(s) for s in summaries),
                share,
            )
            summaries = [_cut(s, share) for s in summaries]
        body = "\n\n".join(f"Summary {i}:\n{s}" for i, s in enumerate(summaries, start=1))
        if final:
            task = (
                "Using only them, write the summary of the whole text. "
                f"{self.instructions or DEFAULT_INSTRUCTIONS}"
            )
        else:
            task = (
                "Merge them into one summary that keeps the important names, numbers, dates "
                f"and events, without repeating yourself.{self._guidance()}"
            )
        return f"Below are summaries of consecutive parts of one text, in order. {task}\n\n{body}"

    def refine_prompt(self, summary: str, chunk: _Chunk, total: int) -> str:
        room = _CONTENT_BUDGET_CHARS - len(chunk.text)
        if len(summary) > room:
            logger.warning(
                "refine: the summary so far (%d characters) and part %d do not fit one request; "
                "the summary is cut to %d characters: lower settings.max_tokens or chunk_tokens",
                len(summary),
                chunk.index + 1,
                room,
            )
            summary = _cut(summary, room)
        return (
            f'Here is a summary of a text so far:\n"""\n{summary}\n"""\n\n'
            f"Here is the next part (part {chunk.index + 1} of {total}, from {chunk.source}):\n"
            f'"""\n{chunk.text}\n"""\n\n'
            "Rewrite the summary so that it covers everything so far, keeping what matters "
            f"from both. {self.instructions or DEFAULT_INSTRUCTIONS}"
        )


def plan_chunks(context_window: int, max_tokens: int) -> tuple[int, int]:
    """``(chunk_tokens, fan_in)`` that fill a model's context window: the fewest requests.

    Each request holds the framing (:data:`_PROMPT_RESERVE_TOKENS`), the reply
    (``max_tokens``), a running summary of at most ``max_tokens`` (refine) and the chunk, so
    ``chunk_tokens = context_window - 2 * max_tokens - reserve``; a combining request takes as
    many summaries of at most ``max_tokens`` as fit in the same room. Chunks are also cut to
    the per-message character limit of the wire, whatever the window.
    """
    if context_window < 1 or max_tokens < 1:
        raise ConfigurationError(
            f"context_window and max_tokens must be positive, got {context_window} and {max_tokens}"
        )
    room = context_window - 2 * max_tokens - _PROMPT_RESERVE_TOKENS
    if room < 100:
        raise ConfigurationError(
            f"a context window of {context_window} tokens leaves {room} tokens per chunk with "
            f"max_tokens={max_tokens}; at least 100 are needed: lower settings.max_tokens"
        )
    return room, max(2, room // max_tokens)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 6)].rstrip() + " [...]"


def _looks_like_a_path(text: str) -> bool:
    if len(text) > 1024 or "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _documents(source: Source) -> list[tuple[str, str]]:
    """``(name, text)`` for every document in ``source``."""
    if isinstance(source, str):
        if _looks_like_a_path(source):
            logger.warning(
                "summarize() got the string %r, which names a file: a string is summarized as "
                "text; pass Path(%r) to summarize the file's content",
                source,
                source,
            )
        return [("the text", source)]
    if isinstance(source, os.PathLike):
        return [_read(Path(source))]
    documents = []
    for number, item in enumerate(source, start=1):
        if isinstance(item, str):
            documents.append((f"document {number}", item))
        elif isinstance(item, os.PathLike):
            documents.append(_read(Path(item)))
        else:
            raise ConfigurationError(
                f"cannot summarize item {number} of type {type(item).__name__}: "
                "give strings (texts) or paths (files)"
            )
    return documents


def _read(path: Path) -> tuple[str, str]:
    try:
        return path.as_posix(), path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path.as_posix()!r} to summarize it: {exc}") from exc


def _chunks(
    documents: list[tuple[str, str]], chunk_tokens: int, counter: TokenCounter
) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    for name, text in documents:
        pieces = split_text(
            text, chunk_tokens, counter=counter, max_chars=MAX_CONTENT_CHARS - _PROMPT_RESERVE_CHARS
        )
        for part, piece in enumerate(pieces, start=1):
            chunks.append(_Chunk(len(chunks), piece, name, part, len(pieces)))
    return chunks


def _groups(
    summaries: list[str], fan_in: int, budget: int, counter: TokenCounter
) -> list[list[str]]:
    """Consecutive summaries grouped so each group fits ``budget`` tokens and ``fan_in`` items.

    A group always takes at least two summaries when two remain, so every level shrinks.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    tokens = chars = 0
    for summary in summaries:
        n = counter(summary)
        if len(current) >= 2 and (
            len(current) >= fan_in
            or tokens + n > budget
            or chars + len(summary) > _CONTENT_BUDGET_CHARS
        ):
            groups.append(current)
            current, tokens, chars = [], 0, 0
        current.append(summary)
        tokens += n
        chars += len(summary)
    if current:
        groups.append(current)
    return groups


async def _gather(coros: Sequence[Awaitable[str | None]]) -> list[str | None]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _map_reduce(
    run: _Run,
    chunks: list[_Chunk],
    fan_in: int,
    budget: int,
    counter: TokenCounter,
    on_failure: str,
) -> str:
    result = run.result
    if len(chunks) == 1:
        text = await run.ask(
            run.single_prompt(chunks[0].text), stage="final", index=0, source=chunks[0].source
        )
        result.chunk_summaries = [text]
        if text is None:
            raise SummarizeError(_failure_message(result), result=result)
        return text

    mapped = await _gather(
        [run.ask(run.chunk_prompt(c), stage="map", index=c.index, source=c.source) for c in chunks]
    )
    result.chunk_summaries = list(mapped)
    summaries = [s for s in mapped if s is not None]
    if result.failures and (on_failure == "raise" or not summaries):
        raise SummarizeError(_failure_message(result), result=result)

    while (
        len(summaries) > fan_in
        or sum(counter(s) for s in summaries) > budget
        or sum(len(s) for s in summaries) > _CONTENT_BUDGET_CHARS
    ):
        groups = _groups(summaries, fan_in, budget, counter)
        result.levels += 1
        level = result.levels
        todo = [g for g in groups if len(g) > 1]
        run.progress.grow(len(todo))

        async def combine(group: list[str], position: int, level: int = level) -> str | None:
            if len(group) == 1:
                return group[0]
            return await run.ask(
                run.combine_prompt(group, final=False),
                stage="reduce",
                index=position,
                source=f"level {level}",
            )

        combined = await _gather([combine(g, i) for i, g in enumerate(groups)])
        if any(s is None for s in combined):
            raise SummarizeError(_failure_message(result), result=result)
        summaries = [s for s in combined if s is not None]
        if len(summaries) == 1:
            break

    run.progress.grow(1)
    result.levels += 1
    final = await run.ask(
        run.combine_prompt(summaries, final=True), stage="final", index=0, source="all parts"
    )
    if final is None:
        raise SummarizeError(_failure_message(result), result=result)
    return final


async def _refine(run: _Run, chunks: list[_Chunk], on_failure: str) -> str:
    result = run.result
    summary: str | None = None
    for chunk in chunks:
        if summary is None:
            prompt = run.single_prompt(chunk.text) if len(chunks) == 1 else run.chunk_prompt(chunk)
        else:
            prompt = run.refine_prompt(summary, chunk, len(chunks))
        updated = await run.ask(prompt, stage="refine", index=chunk.index, source=chunk.source)
        result.chunk_summaries.append(updated)
        if updated is None:
            if on_failure == "raise":
                result.summary = summary or ""
                raise SummarizeError(_failure_message(result), result=result)
            continue
        summary = updated
    if summary is None:
        raise SummarizeError(_failure_message(result), result=result)
    return summary


def _failure_message(result: SummaryResult) -> str:
    shown = "; ".join(str(f) for f in result.failures[:3])
    more = f" (and {len(result.failures) - 3} more)" if len(result.failures) > 3 else ""
    return (
        f"summarizing failed for {len(result.failures)} of {result.chunks} chunk(s): {shown}{more}. "
        "The summaries that succeeded are in error.result.chunk_summaries; pass "
        "on_failure='skip' to summarize without the failed chunks"
    )


async def summarize(
    source: Source,
    model: Model,
    *,
    strategy: Strategy = "map_reduce",
    instructions: str | None = None,
    chunk_tokens: int | None = None,
    fan_in: int | None = None,
    max_concurrency: int = 4,
    retries: int = 2,
    on_failure: Literal["raise", "skip"] = "raise",
    counter: TokenCounter = approx_tokens,
    settings: ModelSettings | None = None,
    progress: bool | None = None,
    context_window: int | None = None,
    durable: bool = False,
) -> SummaryResult:
    """Summarize ``source``: a text, a file path, or a list of texts or paths.

    Args:
        source: A string is the text itself (never a file name); paths are read as UTF-8.
            Several documents are chunked separately and summarized together.
        model: Any :class:`~agentkit.models.base.Model`; only plain requests are made.
        strategy: ``"map_reduce"`` (concurrent) or ``"refine"`` (sequential).
        instructions: What the final summary should be like ("five bullet points", "for a
            lawyer", ...). Defaults to :data:`DEFAULT_INSTRUCTIONS`.
        chunk_tokens: The largest chunk, in tokens as measured by ``counter``; also the budget
            for combining summaries in one request. By default the most the context window
            allows (:func:`plan_chunks`), or 3000 when no window is known.
        fan_in: How many summaries map-reduce combines in one request. By default as many as
            the context window holds, or 4 when no window is known.
        max_concurrency: Most requests in flight at once. The model client's own rate limit
            still applies beneath it.
        retries: Extra attempts for a failed request (an error or an empty reply).
        on_failure: ``"raise"`` a :class:`SummarizeError` with the partial result when a chunk
            fails, or ``"skip"`` it and list it in ``SummaryResult.failures``. A request that
            combines summaries and keeps failing always raises (nothing can stand in for it).
        counter: Counts tokens in a text; an approximation by default.
        settings: Model settings for every request; by default ``max_tokens=600``.
        progress: Show a progress bar on stderr: ``None`` shows it when stderr is a terminal.
        context_window: The model's context window in tokens (default: the model's
            ``context_window`` attribute, if it has one). With ``settings.max_tokens`` it sets
            the default ``chunk_tokens`` and ``fan_in``, so the input takes the fewest requests.
        durable: Record each request (with its retries) as a step of the durable workflow
            this call runs in, so a crashed summary run again sends only the requests that had
            not finished. Needs the ``dbos`` extra and a workflow:
            :class:`agentkit.durable.DurableSummarizer` runs one.

    Cost in model requests, for ``n`` chunks: refine makes ``n``; map-reduce makes ``n`` plus
    about ``ceil(n / fan_in) + ceil(n / fan_in**2) + ...`` to combine, ending with one final
    request (1 in all when the input fits one chunk). Retries add to these.
    """
    if strategy not in ("map_reduce", "refine"):
        raise ConfigurationError(
            f"unknown strategy {strategy!r}; use 'map_reduce' (concurrent) or 'refine' (sequential)"
        )
    if on_failure not in ("raise", "skip"):
        raise ConfigurationError(f"on_failure must be 'raise' or 'skip', got {on_failure!r}")
    window = context_window if context_window is not None else _window_of(model)
    if window is not None and (chunk_tokens is None or fan_in is None):
        max_tokens = (settings or DEFAULT_SETTINGS).max_tokens or DEFAULT_SETTINGS.max_tokens or 600
        planned_chunk, planned_fan_in = plan_chunks(window, max_tokens)
        chunk_tokens = planned_chunk if chunk_tokens is None else chunk_tokens
        fan_in = planned_fan_in if fan_in is None else fan_in
    chunk_tokens = _DEFAULT_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    fan_in = _DEFAULT_FAN_IN if fan_in is None else fan_in
    if chunk_tokens < 100:
        raise ConfigurationError(f"chunk_tokens must be at least 100, got {chunk_tokens}")
    if fan_in < 2:
        raise ConfigurationError(f"fan_in must be at least 2, got {fan_in}")
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    if retries < 0:
        raise ConfigurationError(f"retries must be 0 or more, got {retries}")

    chunks = _chunks(_documents(source), chunk_tokens, counter)
    if not chunks:
        raise ConfigurationError("nothing to summarize: the input has no text")
    logger.debug("summarizing %d chunk(s) with %s", len(chunks), strategy)

    step: AskStep | None = None
    if durable:
        from ..durable._summarize import chunk_step  # the dbos extra, only when asked for

        step = chunk_step()
    result = SummaryResult(summary="", strategy=strategy, chunks=len(chunks))
    bar = Progress(progress, len(chunks), "summarizing", "req")
    run = _Run(
        model,
        settings=settings or DEFAULT_SETTINGS,
        max_concurrency=max_concurrency,
        retries=retries,
        instructions=instructions,
        progress=bar,
        result=result,
        step=step,
    )
    try:
        if strategy == "refine":
            result.summary = await _refine(run, chunks, on_failure)
        else:
            result.summary = await _map_reduce(
                run, chunks, fan_in, chunk_tokens, counter, on_failure
            )
    except _Fatal as fatal:
        error = fatal.original
        raise SummarizeError(
            f"summarizing stopped: {type(error).__name__}: {error}. No retry can fix this; "
            "the summaries made so far are in error.result",
            result=result,
        ) from error
    finally:
        result.usage.requests = result.requests
        bar.close()
    return result


def _window_of(model: Model) -> int | None:
    window = getattr(model, "context_window", None)
    return window if isinstance(window, int) and not isinstance(window, bool) else None


def summarize_sync(source: Source, model: Model, **options: Any) -> SummaryResult:
    """:func:`summarize` for synchronous code (works inside a running event loop too)."""
    return run_sync(summarize(source, model, **options))
