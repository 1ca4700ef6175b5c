"""Durable summaries: each summary request (with its retries) a step of a DBOS workflow.

``summarize(..., durable=True)`` records each request through :func:`chunk_step`; a
:class:`DurableSummarizer` runs a whole summary as one workflow whose id is the run id, so a
summary stopped by a crash, run again with the same id, sends only the requests that had not
finished. Map-reduce requests run concurrently; their steps are numbered in call order.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dbos import DBOS, PortableWorkflowError, SetWorkflowID
from dbos import WorkflowSerializationFormat as _Format

from .._sync import run_sync
from ..errors import ConfigurationError
from ..messages import Usage
from ..models.base import Model
from ..patterns.summarize import (
    Answer,
    AskStep,
    ChunkFailure,
    SummarizeError,
    SummaryResult,
    _documents,
    _Fatal,
    summarize,
)
from . import _engine
from ._codec import error_from_json, error_to_json

__all__ = ["DurableSummarizer", "chunk_step"]

STEP = "agentkit.summary_request"

_names: set[str] = set()


def chunk_step() -> AskStep:
    """Record each summary request as a step of the workflow this summary runs in."""
    if DBOS.workflow_id is None:
        raise ConfigurationError(
            "summarize(durable=True) records each request as a step of a durable workflow; run "
            "it with agentkit.durable.DurableSummarizer (or inside your own DBOS workflow)"
        )

    async def step(
        attempts: Callable[[str, str, int, str], Awaitable[Answer]],
        prompt: str,
        stage: str,
        index: int,
        source: str,
    ) -> Answer:
        reservation = DBOS.reserve_step()  # before any await: steps numbered in call order

        async def request() -> dict[str, Any]:
            try:
                answer = await attempts(prompt, stage, index, source)
            except _Fatal as fatal:
                return {"fatal": error_to_json(fatal.original), "requests": fatal.requests}
            return _answer_to_json(answer)

        data = await reservation.run_async({"name": STEP}, request)
        if "fatal" in data:
            raise _Fatal(error_from_json(data["fatal"]), int(data["requests"]))
        return _answer_from_json(data)

    return step


def _failure_to_json(failure: ChunkFailure) -> dict[str, Any]:
    return {
        "stage": failure.stage,
        "index": failure.index,
        "source": failure.source,
        "attempts": failure.attempts,
        "error": error_to_json(failure.error),
    }


def _failure_from_json(data: dict[str, Any]) -> ChunkFailure:
    return ChunkFailure(
        stage=data["stage"],
        index=int(data["index"]),
        source=data["source"],
        attempts=int(data["attempts"]),
        error=error_from_json(data["error"]),
    )


def _answer_to_json(answer: Answer) -> dict[str, Any]:
    failure = answer.failure
    return {
        "text": answer.text,
        "requests": answer.requests,
        "usage": answer.usage.model_dump(),
        "failure": None if failure is None else _failure_to_json(failure),
    }


def _answer_from_json(data: dict[str, Any]) -> Answer:
    failure = data.get("failure")
    return Answer(
        text=data.get("text"),
        requests=int(data["requests"]),
        usage=Usage.model_validate(data["usage"]),
        failure=None if not isinstance(failure, dict) else _failure_from_json(failure),
    )


def _result_to_json(result: SummaryResult) -> dict[str, Any]:
    return {
        "summary": result.summary,
        "strategy": result.strategy,
        "chunks": result.chunks,
        "requests": result.requests,
        "usage": result.usage.model_dump(),
        "failures": [_failure_to_json(f) for f in result.failures],
        "chunk_summaries": list(result.chunk_summaries),
        "levels": result.levels,
    }


def _result_from_json(data: dict[str, Any]) -> SummaryResult:
    return SummaryResult(
        summary=data["summary"],
        strategy=data["strategy"],
        chunks=int(data["chunks"]),
        requests=int(data["requests"]),
        usage=Usage.model_validate(data["usage"]),
        failures=[_failure_from_json(f) for f in data["failures"]],
        chunk_summaries=list(data["chunk_summaries"]),
        levels=int(data["levels"]),
    )


class DurableSummarizer:
    """A summary that survives crashes: :func:`~agentkit.patterns.summarize` as a workflow.

    Create it at module level, before :func:`agentkit.durable.launch`, with the model and any
    options of ``summarize`` (``strategy``, ``instructions``, ``chunk_tokens``...)::

        summarizer = DurableSummarizer(WorkersAI(), strategy="map_reduce")
        launch()
        result = await summarizer.run(report_text, run_id="report-2024")

    Files are read when :meth:`run` is called and their text is stored with the run.
    """

    def __init__(self, model: Model, *, name: str = "summary", **options: Any) -> None:
        _engine.require_not_launched("DurableSummarizer(...)")
        if name in _names:
            raise ConfigurationError(
                f"a DurableSummarizer named {name!r} already exists; pass name=..."
            )
        for key in ("progress", "durable", "counter"):
            if key in options:
                raise ConfigurationError(f"DurableSummarizer does not take {key}=")
        self.model = model
        self.name = name
        self.options = options

        async def agentkit_summarize(texts: list[str]) -> dict[str, Any]:
            try:
                result = await summarize(
                    texts, self.model, durable=True, progress=False, **self.options
                )
            except SummarizeError as exc:
                with contextlib.suppress(AttributeError, TypeError):
                    exc.data = {  # type: ignore[attr-defined]  # read by DBOS's JSON errors
                        "error": error_to_json(exc),
                        "result": _result_to_json(exc.result),
                    }
                raise
            return _result_to_json(result)

        self.workflow_name = f"agentkit.summarize.{name}"
        self._workflow = DBOS.workflow(
            name=self.workflow_name, serialization_type=_Format.PORTABLE
        )(agentkit_summarize)
        _names.add(name)

    async def run(self, source: str | Sequence[str], *, run_id: str | None = None) -> SummaryResult:
        """Summarize ``source`` (a text, or a list of texts or paths) as run ``run_id``."""
        _engine.require_launched("DurableSummarizer")
        texts = [text for _, text in _documents(source)]
        with SetWorkflowID(run_id or uuid.uuid4().hex):
            handle = await DBOS.start_workflow_async(self._workflow, texts)
        try:
            data = await handle.get_result()
        except PortableWorkflowError as exc:
            recorded: dict[str, Any] = exc.data if isinstance(exc.data, dict) else {}
            if isinstance(recorded.get("result"), dict):
                result = _result_from_json(recorded["result"])
                raise SummarizeError(exc.message, result=result) from None
            error = recorded.get("error")
            raise error_from_json(
                error if isinstance(error, dict) else {"type": exc.name, "message": exc.message}
            ) from None
        return _result_from_json(data)

    def run_sync(self, source: str | Sequence[str], *, run_id: str | None = None) -> SummaryResult:
        """:meth:`run` for synchronous code."""
        return run_sync(self.run(source, run_id=run_id))
