"""Starting and stopping DBOS for agentkit, once per process.

DBOS keeps every workflow and step in its system database: SQLite (one file, one process) or
Postgres (any number of processes and machines). ``launch()`` configures it the way durable
agentkit runs need:

- step outputs, workflow inputs and results are stored as JSON (DBOS's portable JSON
  serializer), never as pickles;
- a fixed application version (:data:`DURABLE_FORMAT`), so that a process started from the same
  agentkit recovers the runs another one left unfinished;
- DBOS's own console logs only for critical failures unless asked otherwise (agentkit reports
  failed runs itself; ``launch(log_level="INFO")`` shows DBOS's).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import IO, Any

from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DURABLE_FORMAT",
    "is_launched",
    "launch",
    "resolve_database_url",
    "shutdown",
]

logger = logging.getLogger("agentkit.durable")

#: The database used when neither ``launch(database_url=...)`` nor ``DBOS_SYSTEM_DATABASE_URL``
#: names one: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///agentkit.sqlite"

#: The application version given to DBOS. It names the layout of agentkit's workflows and
#: steps; it changes only when runs recorded by an older agentkit could not be replayed.
DURABLE_FORMAT = "agentkit-durable-1"

_lock = threading.Lock()
_launched_url: str | None = None
_sqlite_lock: IO[bytes] | None = None


def resolve_database_url(url: str | None = None) -> str:
    """The database URL :func:`launch` uses for ``database_url=url``."""
    return url or os.environ.get("DBOS_SYSTEM_DATABASE_URL") or DEFAULT_DATABASE_URL


def is_launched() -> bool:
    """Whether :func:`launch` has run in this process (and :func:`shutdown` has not)."""
    return _launched_url is not None


def require_not_launched(what: str) -> None:
    if _launched_url is not None:
        raise ConfigurationError(
            f"{what} must be created before agentkit.durable.launch(): DBOS registers workflows "
            "at start-up so that it can recover them. Create it at module level (next to the "
            "Agent it wraps) and call launch() afterwards."
        )


def require_launched(what: str) -> None:
    if _launched_url is None:
        raise ConfigurationError(
            f"{what} needs the durable engine: call agentkit.durable.launch() once at start-up "
            "(after creating every DurableAgent)."
        )


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (``None`` for other databases and in-memory SQLite)."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    path = parsed.database
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path)


def _lock_sqlite(url: str) -> IO[bytes] | None:
    """Hold an exclusive lock beside a SQLite database for as long as this process lives.

    SQLite serves one process: a second one would recover the first one's runs as its own and
    run them twice. The operating system drops the lock when the process ends, even on a crash.
    """
    path = sqlite_path(url)
    if path is None:
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; one process by convention
        return None
    handle = open(path + ".lock", "ab")  # noqa: SIM115 - held open until shutdown()
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigurationError(
            f"another process is already using the SQLite database {path}. SQLite is for one "
            "process: to run several workers on one job, use Postgres (for example "
            "--database-url postgresql://user:password@host:5432/agentkit)."
        ) from None
    return handle


def launch(
    database_url: str | None = None,
    *,
    executor_id: str | None = None,
    app_name: str = "agentkit",
    log_level: str = "CRITICAL",
    queues: Sequence[str] | None = None,
) -> str:
    """Start the durable engine (DBOS) for this process, and recover unfinished runs.

    Call it once, after every :class:`~agentkit.durable.DurableAgent` is created.

    Args:
        database_url: where runs are recorded, passed to DBOS as given: ``sqlite:///file.sqlite``
            (one process) or a Postgres URL (many processes and machines). ``None``: the
            ``DBOS_SYSTEM_DATABASE_URL`` environment variable, else ``sqlite:///agentkit.sqlite``
            in the working directory.
        executor_id: this process's name among the workers sharing a database. A restarted
            process with the same id recovers the runs it had in flight. Default: DBOS's
            (``DBOS__VMID`` or ``"local"``).
        app_name: the DBOS application name; processes of one job share it.
        log_level: the level of DBOS's own console logs.
        queues: the only DBOS queues this process takes work from (default: every queue).

    Returns the database URL in use. Calling it again with the same URL does nothing.
    """
    global _launched_url, _sqlite_lock
    from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer

    url = resolve_database_url(database_url)
    with _lock:
        if _launched_url is not None:
            if _launched_url != url:
                raise ConfigurationError(
                    "the durable engine already runs on another database in this process; "
                    "one process uses one database (call shutdown() first to switch)"
                )
            return url
        lock = _lock_sqlite(url)
        config: DBOSConfig = {
            "name": app_name,
            "system_database_url": url,
            "serializer": DBOSPortableJSONSerializer(),
            "application_version": DURABLE_FORMAT,
            "log_level": log_level,
        }
        if executor_id is not None:
            config["executor_id"] = executor_id
        try:
            DBOS(config=config)
            if queues is not None:
                DBOS.listen_queues(list(queues))
            DBOS.launch()
        except BaseException:
            if lock is not None:
                lock.close()
            _destroy(DBOS)
            raise
        _sqlite_lock = lock
        _launched_url = url
    logger.info("durable engine started (executor %s)", DBOS.executor_id)
    return url


def _destroy(dbos: Any) -> None:
    try:
        dbos.destroy(workflow_completion_timeout_sec=0)
    except Exception:  # pragma: no cover - a half-started engine
        logger.debug("DBOS.destroy failed", exc_info=True)


def shutdown() -> None:
    """Stop the durable engine (runs in flight stay recorded and are recovered later)."""
    global _launched_url, _sqlite_lock
    from dbos import DBOS

    with _lock:
        if _launched_url is None:
            return
        _destroy(DBOS)
        if _sqlite_lock is not None:
            _sqlite_lock.close()
        _sqlite_lock = None
        _launched_url = None
