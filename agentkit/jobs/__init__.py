"""Jobs: one agent over many inputs, with results saved as each input finishes.

Every job, whatever runs it, reads the same inputs (a list, or a JSONL file of strings or
``{"id", "input"}`` objects) and writes the same results file (one JSON line per finished
input). The pieces are shared:

- :mod:`agentkit.jobs._io`: reading inputs, building and writing result lines, the locked
  results file and what a resume skips (:class:`ResultsFile`);
- :mod:`agentkit.jobs._lock`: one process per results file (:class:`OutputLock`);
- :mod:`agentkit.jobs._report`: progress bar, counts, and what to tell the user
  (:class:`JobReporter`, :class:`BatchReport`);
- :mod:`agentkit.jobs.runner`: the plain runner, :func:`run_batch` (in this process,
  at-least-once per input).

On the command line: ``agentkit batch my_agent.py:agent inputs.jsonl -o results.jsonl``.
"""

from __future__ import annotations

from .._load import load_agent
from ._io import (
    BatchItem,
    InputId,
    ResultsFile,
    error_usage,
    failure_record,
    input_key,
    iter_records,
    read_inputs,
    read_results,
    result_record,
)
from ._lock import OutputLock, OutputLockedError
from ._report import AT_LEAST_ONCE, BatchReport, JobReporter, summary
from .runner import run_batch, run_batch_sync

__all__ = [
    "AT_LEAST_ONCE",
    "BatchItem",
    "BatchReport",
    "InputId",
    "JobReporter",
    "OutputLock",
    "OutputLockedError",
    "ResultsFile",
    "error_usage",
    "failure_record",
    "input_key",
    "iter_records",
    "load_agent",
    "read_inputs",
    "read_results",
    "result_record",
    "run_batch",
    "run_batch_sync",
    "summary",
]
