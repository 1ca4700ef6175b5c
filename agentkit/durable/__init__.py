"""Durable agent runs on DBOS (``pip install "agentkit[dbos]"``).

A :class:`DurableAgent` runs agent.py's loop as a DBOS workflow whose id is the run id; each
model request and each tool call is a step recorded in a database (SQLite for one process,
Postgres for many). After a crash, running the same run id again goes on from the last
completed step: a finished model request is never sent again, a finished tool call never run
again. See docs/durable.md.

::

    from agentkit.durable import DurableAgent, launch

    durable = DurableAgent(agent)      # at module level, before launch()
    launch()                           # sqlite:///agentkit.sqlite, or DBOS_SYSTEM_DATABASE_URL
    result = durable.run_sync("...", run_id="ticket-42")
"""

from __future__ import annotations

try:
    import dbos as _dbos  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agentkit.durable needs DBOS, an optional dependency: pip install 'agentkit[dbos]'"
    ) from exc

from ._agent import DurableAgent
from ._engine import DEFAULT_DATABASE_URL, is_launched, launch, shutdown
from ._summarize import DurableSummarizer

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DurableAgent",
    "DurableSummarizer",
    "is_launched",
    "launch",
    "shutdown",
]
