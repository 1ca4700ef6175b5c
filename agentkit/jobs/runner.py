"""The plain job runner: many inputs through one agent in this process, results as they finish.

Each finished input appends one line to the results file (format in :mod:`agentkit.jobs._io`).
With ``resume=True`` the inputs that already have a successful line are skipped, so a job
stopped by a crash or Ctrl-C continues where it stopped. An input that was running when the
process stopped runs again from the start, tools included: the runner is at-least-once per
input. The durable mode runs each model request and tool call exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from typing import Any

from .._scope import session_affinity
from .._sync import run_sync
from ..agent import Agent
from ..errors import JOB_FATAL_ERRORS, ConfigurationError
from ._io import (
    BatchItem,
    ResultsFile,
    error_usage,
    failure_record,
    input_key,
    read_inputs,
    result_record,
)
from ._report import BatchReport, JobReporter

__all__ = ["run_batch", "run_batch_sync"]


async def run_batch(
    agent: Agent[Any],
    inputs: str | os.PathLike[str] | Sequence[Any],
    *,
    output: str | os.PathLike[str],
    concurrency: int = 4,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    deps: Any = None,
    max_steps: int | None = None,
    reporter: JobReporter | None = None,
) -> BatchReport:
    """Run ``agent`` on every input, appending one JSON line per finished input to ``output``.

    Args:
        agent: The agent; each input is one ``agent.run(input, deps=deps)``.
        inputs: A list of strings / ``{"id", "input"}`` objects, or a JSONL file of them.
        output: The JSONL results file, written as results arrive (in finishing order). It is
            locked while the job runs (``<output>.lock``): a second process on the same file
            gets :class:`~agentkit.jobs.OutputLockedError` naming the first one's PID.
        concurrency: How many runs at once. The model client's ``rate_limit`` still applies.
        resume: Skip inputs that already have a successful result in ``output``. An input
            that was running when the job stopped runs again, tools included (at-least-once).
            A done input whose text changed is not run again; a warning names it.
        overwrite: Start ``output`` afresh if it exists. Without ``resume`` or ``overwrite``
            an existing output file is an error, so no result is lost by mistake.
        progress: A progress bar on stderr; ``None`` shows it when stderr is a terminal.
        deps: Passed to every run (reaches tools through ``ToolContext``).
        max_steps: Overrides the agent's ``max_steps`` for every run.
        reporter: How progress and messages are reported (default: a
            :class:`~agentkit.jobs.JobReporter` with ``progress``, messages to the log).

    Errors no retry can fix (bad credentials, no such model, daily quota used up) stop the
    job at once and are raised: every line written so far stays, and ``resume=True``
    continues later.

    Cost: the sum of each run's requests (one per agent step), for the inputs not skipped.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    if resume and overwrite:
        raise ConfigurationError("resume=True and overwrite=True contradict each other; pick one")
    items = read_inputs(inputs)
    reporter = reporter or JobReporter(progress)
    with ResultsFile.open(output, resume=resume, overwrite=overwrite) as results:
        todo = results.check_inputs(items)
        report = BatchReport(
            output=results.path,
            total=len(items),
            skipped=len(items) - len(todo),
            changed_ids=list(results.changed),
        )
        reporter.started(report, todo, resume=resume)
        if not todo:
            return report
        queue = iter(todo)

        async def worker() -> None:
            for item in queue:
                error = await _run_one(agent, item, results, report, deps, max_steps)
                reporter.input_done(item, error)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(todo)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            reporter.stopped(exc)
            raise
        finally:
            reporter.close()
    return report


async def _run_one(
    agent: Agent[Any],
    item: BatchItem,
    results: ResultsFile,
    report: BatchReport,
    deps: Any,
    max_steps: int | None,
) -> Exception | None:
    # One prompt-cache key per input: a rerun of the same input (--resume) reuses it.
    affinity = "input-" + hashlib.sha256(input_key(item.id).encode()).hexdigest()[:24]
    try:
        with session_affinity(affinity):
            result = await agent.run(item.input, deps=deps, max_steps=max_steps)
    except JOB_FATAL_ERRORS:
        raise
    except Exception as exc:
        record = failure_record(item, exc)
        usage = error_usage(exc)
        report.failed += 1
        report.failed_ids.append(item.id)
        error: Exception | None = exc
    else:
        record = result_record(item, result.output, result.usage, result.steps)
        usage = result.usage
        report.succeeded += 1
        error = None
    report.usage = report.usage + usage
    results.write(record)
    return error


def run_batch_sync(
    agent: Agent[Any],
    inputs: str | os.PathLike[str] | Sequence[Any],
    *,
    output: str | os.PathLike[str],
    **options: Any,
) -> BatchReport:
    """:func:`run_batch` for synchronous code; Ctrl-C stops it cleanly (resume later)."""
    return run_sync(run_batch(agent, inputs, output=output, **options))
