"""Batches of agent runs; they live in :mod:`agentkit.jobs` now, these names stay importable.

``run_batch``, ``run_batch_sync``, ``read_inputs``, ``read_results``, ``BatchItem``,
``BatchReport`` and ``load_agent`` are the ones of :mod:`agentkit.jobs`; ``add_batch_command``
adds the ``agentkit batch`` command to an ``argparse`` subparsers object.
"""

from __future__ import annotations

import argparse
from typing import Any

from .jobs import BatchItem, BatchReport, load_agent, read_inputs, read_results
from .jobs.runner import run_batch, run_batch_sync

__all__ = [
    "BatchItem",
    "BatchReport",
    "add_batch_command",
    "batch_command",
    "load_agent",
    "read_inputs",
    "read_results",
    "run_batch",
    "run_batch_sync",
]


def add_batch_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``batch`` to an ``argparse`` subparsers object (its handler: :func:`batch_command`)."""
    from .cli import _add_batch

    _add_batch(subparsers)
    parser: argparse.ArgumentParser = subparsers.choices["batch"]
    return parser


def batch_command(args: argparse.Namespace) -> int:
    """Run ``agentkit batch`` with parsed arguments; returns the exit status."""
    from .cli import _cmd_batch

    return _cmd_batch(args)
