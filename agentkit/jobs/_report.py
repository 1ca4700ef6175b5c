"""What a job tells its user: the progress bar, the counts, and what to do after a stop.

Every runner reports through a :class:`JobReporter`: :meth:`~JobReporter.started` once,
:meth:`~JobReporter.input_done` per finished input, :meth:`~JobReporter.stopped` if the job
stops early and :meth:`~JobReporter.close` at the end. Messages for the user (inputs whose text
changed, how to continue after a stop) go to ``say``: the ``agentkit.jobs`` log by default,
stderr on the command line. ``resume_hint`` says how to continue in the user's terms
(``resume=True`` in Python, the command line with ``--resume`` in a shell).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._progress import Progress
from ..messages import Usage
from ._io import BatchItem, InputId

__all__ = ["AT_LEAST_ONCE", "DURABLE_PROMISE", "BatchReport", "JobReporter", "summary"]

logger = logging.getLogger("agentkit.jobs")

#: What a plain (not durable) job promises about inputs interrupted mid-run.
AT_LEAST_ONCE = (
    "inputs that were running when a job stopped run again from the start on resume, their tool "
    "calls included (at-least-once per input); for steps that run exactly once, use the durable "
    "mode (--durable, docs/durable.md)"
)

#: What a durable job promises about runs interrupted mid-run.
DURABLE_PROMISE = (
    "runs that were in flight go on from their last completed step: a finished model request "
    "is not sent again, a finished tool call not run again (the step in flight may run again)"
)


@dataclass
class BatchReport:
    """What a job did.

    ``total`` inputs, of which ``skipped`` were already done (resume), ``succeeded`` and
    ``failed`` ran now; ``usage`` sums the runs made now; ``output`` is the results file.
    ``changed_ids``: inputs skipped as done although their text is not the one their result
    was made from.
    """

    output: Path
    total: int
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    failed_ids: list[InputId] = field(default_factory=list)
    changed_ids: list[InputId] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no input failed in this run."""
        return self.failed == 0

    @property
    def finished(self) -> int:
        """Inputs with a result: skipped, succeeded or failed."""
        return self.skipped + self.succeeded + self.failed


def _ids(ids: Sequence[InputId], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


class JobReporter:
    """Progress and messages of one job (see the module docstring).

    ``progress``: a bar on stderr (``None``: when stderr is a terminal). ``say``: where
    messages for the user go. ``resume_hint``: how the user continues a stopped job;
    ``promise``: what happens to the inputs that were running (the plain runner's by default).
    """

    def __init__(
        self,
        progress: bool | None = None,
        *,
        resume_hint: str = "run again with resume=True",
        say: Callable[[str], None] | None = None,
        inform: Callable[[str], None] | None = None,
        name: str = "batch",
        promise: str = AT_LEAST_ONCE,
    ) -> None:
        self.progress = progress
        self.resume_hint = resume_hint
        self.promise = promise
        self.name = name
        self.say = say or (lambda message: logger.warning("%s: %s", name, message))
        self.inform = inform or (lambda message: logger.info("%s: %s", name, message))
        self.report: BatchReport | None = None
        #: Set once :meth:`stopped` has told the user how to continue.
        self.stop_reported = False
        self._bar: Progress | None = None

    def started(self, report: BatchReport, todo: Sequence[BatchItem], *, resume: bool) -> None:
        """The job is about to run ``todo``; ``report`` counts what was skipped."""
        self.report = report
        logger.info(
            "%s: %d inputs, %d already done, %d to run",
            self.name,
            report.total,
            report.skipped,
            len(todo),
        )
        if report.changed_ids:
            many = len(report.changed_ids) > 1
            self.say(
                f"the text of {'inputs' if many else 'input'} {_ids(report.changed_ids)} "
                f"changed since {'their results were' if many else 'its result was'} written to "
                f"{report.output}; the old {'results are' if many else 'result is'} kept and "
                "not run again. To run on the new text, remove those lines from the results "
                "file, or start afresh with overwrite=True (--overwrite)"
            )
        if resume and report.skipped and todo:
            self.inform(
                f"resuming: {report.skipped} of {report.total} inputs already done, "
                f"{len(todo)} to run; {self.promise}"
            )
        if todo:
            self._bar = Progress(
                self.progress, report.total, self.name, "input", initial=report.skipped
            )

    def input_done(self, item: BatchItem, error: BaseException | None) -> None:
        """One input finished (``error`` when its run failed)."""
        report = self.report
        if error is not None:
            logger.warning(
                "%s input %r failed: %s: %s", self.name, item.id, type(error).__name__, error
            )
        if self._bar is not None and report is not None:
            self._bar.advance(report.failed)

    def stop_message(self, error: BaseException | None = None) -> str:
        """What to tell the user when the job stops before its end (``error``: why)."""
        report = self.report
        text = "stopped"
        if report is not None:
            text += f" after {report.finished} of {report.total} inputs"
        if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
            text += " (interrupted)"
        elif error is not None:
            text += f" ({type(error).__name__}: {error})"
        if report is not None:
            text += f"; results so far are in {report.output}"
        return f"{text}.\nTo continue, {self.resume_hint}\nNote: {self.promise}."

    def stopped(self, error: BaseException) -> None:
        """The job stops early because of ``error`` (Ctrl-C, or an error no retry can fix)."""
        self.close()
        self.say(self.stop_message(error))
        self.stop_reported = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def summary(report: BatchReport) -> str:
    """One line: the counts, requests, tokens and where the results are."""
    return (
        f"{report.succeeded} succeeded, {report.failed} failed, {report.skipped} skipped; "
        f"{report.usage.requests} requests, {report.usage.total_tokens} tokens "
        f"({report.usage.cached_tokens} prompt tokens from the cache); "
        f"results in {report.output}"
    )
