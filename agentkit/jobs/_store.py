"""What durable jobs keep next to DBOS's tables: each job's settings, and the account's rate.

Two small tables in the job database (SQLite or Postgres), through SQLAlchemy (a DBOS
dependency):

- ``agentkit_jobs``: one row per job, written when it is first enqueued: the agent's workflow,
  the queue, the account limit (requests per minute), the per-worker concurrency and the number
  of inputs. Workers read it, so every process of a job works under the same settings.
- ``agentkit_rate``: one row per account limit: the time (database clock, seconds) of the next
  free request slot. :class:`AccountRateLimit` takes slots from it in one ``UPDATE``, so every
  process sharing the database is counted against one limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import ConfigurationError

__all__ = [
    "TARGET_SHARE",
    "AccountRateLimit",
    "JobSettings",
    "JobStore",
]

#: The share of the account limit the limiter aims at. Slots spaced exactly ``60/N`` s apart
#: overshoot a 1-second window at the server when a late request meets an on-time one; spacing
#: them for 97% of the limit leaves room for that jitter.
TARGET_SHARE = 0.97

_metadata = sa.MetaData()
_jobs = sa.Table(
    "agentkit_jobs",
    _metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("workflow", sa.String(300), nullable=False),
    sa.Column("queue", sa.String(300), nullable=False),
    sa.Column("requests_per_minute", sa.Float, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
_rate = sa.Table(
    "agentkit_rate",
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("next_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class JobSettings:
    """A job's settings as stored when it was first enqueued."""

    job_id: str
    workflow: str
    queue: str
    requests_per_minute: float
    concurrency: int
    total: int


def _engine_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver DBOS installs
    return parsed


class JobStore:
    """The job tables of one database (created on first use)."""

    def __init__(self, database_url: str) -> None:
        url = _engine_url(database_url)
        self.is_sqlite = url.drivername.startswith("sqlite")
        kwargs: dict[str, Any] = {} if self.is_sqlite else {"pool_size": 2, "max_overflow": 2}
        self.engine = sa.create_engine(url, **kwargs)
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            shown = url.render_as_string(hide_password=True)
            raise ConfigurationError(
                f"cannot open the job database {shown}: {str(exc.orig).strip()}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def save(self, settings: JobSettings) -> JobSettings:
        """Store ``settings`` unless the job exists; return the settings stored."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(_jobs).where(_jobs.c.job_id == settings.job_id)).first()
            if row is None:
                conn.execute(
                    _jobs.insert().values(
                        job_id=settings.job_id,
                        workflow=settings.workflow,
                        queue=settings.queue,
                        requests_per_minute=settings.requests_per_minute,
                        concurrency=settings.concurrency,
                        total=settings.total,
                        created_at=time.time(),
                    )
                )
                return settings
        stored = _settings(row)
        if stored.workflow != settings.workflow:
            raise ConfigurationError(
                f"job {settings.job_id!r} was enqueued for {stored.workflow!r}, not "
                f"{settings.workflow!r}; use the same agent, or another --job name"
            )
        return stored

    def get(self, job_id: str) -> JobSettings | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_jobs).where(_jobs.c.job_id == job_id)).first()
        return None if row is None else _settings(row)

    def jobs(self, workflow: str | None = None) -> list[JobSettings]:
        query = sa.select(_jobs).order_by(_jobs.c.created_at)
        if workflow is not None:
            query = query.where(_jobs.c.workflow == workflow)
        with self.engine.connect() as conn:
            return [_settings(row) for row in conn.execute(query)]


def _settings(row: Any) -> JobSettings:
    return JobSettings(
        job_id=row.job_id,
        workflow=row.workflow,
        queue=row.queue,
        requests_per_minute=float(row.requests_per_minute),
        concurrency=int(row.concurrency),
        total=int(row.total),
    )


class AccountRateLimit:
    """One account's request rate, shared by every process on a Postgres database.

    :meth:`acquire` takes the next free slot (slots ``60 / (N * 0.97)`` s apart) and sleeps
    until it. On Postgres the slot is taken from the ``agentkit_rate`` row in one statement on
    the database's clock, so processes on several machines share the limit. On SQLite (one
    process) the slots are kept in memory.

    It has the interface of :class:`agentkit.models.RateLimit`, so it takes the place of a
    model's own limit: every HTTP attempt, retries included, takes a slot. Model transports call
    :meth:`acquire` before a request waits for a connection and, when their HTTP client reports
    it, :meth:`acquire_send` as the request is written. The account's slot is taken at the
    latest of the two the transport uses (``at_send=True`` when it calls :meth:`acquire_send`),
    so that the spacing holds as the server sees it; the other one spaces this process's
    requests on its own. It can be put in place before the limit is known (the engine may start
    runs as soon as it is launched): until :meth:`configure` is called, both wait.
    """

    def __init__(
        self, *, name: str = "account", share: float = TARGET_SHARE, at_send: bool = False
    ) -> None:
        self.name = name
        self.share = share
        self.at_send = at_send
        self.requests_per_minute = 0.0
        self.interval = 0.0
        self._store: JobStore | None = None
        self._lock = threading.Lock()
        self._next = 0.0
        self._next_send = 0.0
        self._ready = threading.Event()

    def configure(self, requests_per_minute: float, store: JobStore | None = None) -> None:
        """Set the limit (requests per minute for the whole account) and where it is shared."""
        if not requests_per_minute > 0:
            raise ConfigurationError(
                f"requests per minute must be positive, got {requests_per_minute!r}"
            )
        self.requests_per_minute = requests_per_minute
        self.interval = 60.0 / (requests_per_minute * self.share)
        self._store = store if store is not None and not store.is_sqlite else None
        if self._store is not None:
            from sqlalchemy.dialects.postgresql import insert

            with self._store.engine.begin() as conn:
                conn.execute(
                    insert(_rate).values(name=self.name, next_at=0.0).on_conflict_do_nothing()
                )
        self._ready.set()

    def _reserve_local(self, send: bool) -> float:
        with self._lock:
            now = time.monotonic()
            if send:
                slot = max(self._next_send, now)
                self._next_send = slot + self.interval
            else:
                slot = max(self._next, now)
                self._next = slot + self.interval
        return slot - now

    def _reserve_shared(self) -> float:
        assert self._store is not None
        statement = sa.text(
            "WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) "
            "UPDATE agentkit_rate SET next_at = GREATEST(next_at, clock.now) + :interval "
            "FROM clock WHERE name = :name "
            "RETURNING next_at - :interval - clock.now"
        )
        with self._store.engine.begin() as conn:
            delay = conn.execute(statement, {"interval": self.interval, "name": self.name}).scalar()
        return float(delay or 0.0)

    def _shared_here(self, send: bool) -> bool:
        return self._store is not None and send == self.at_send

    def reserve(self) -> float:
        """Take the next slot before a request waits for a connection; return the wait."""
        self._ready.wait()
        return self._reserve_shared() if self._shared_here(False) else self._reserve_local(False)

    def reserve_send(self) -> float:
        """Take the next slot to write a request; return how long to wait for it."""
        self._ready.wait()
        return self._reserve_shared() if self._shared_here(True) else self._reserve_local(True)

    async def _wait(self, send: bool) -> None:
        if not self._ready.is_set():
            await asyncio.to_thread(self._ready.wait)
        if self._shared_here(send):
            delay = await asyncio.to_thread(self._reserve_shared)
        else:
            delay = self._reserve_local(send)
        if delay > 0:
            await asyncio.sleep(delay)

    async def acquire(self) -> None:
        """Wait for the next slot (before the request waits for a connection)."""
        await self._wait(send=False)

    async def acquire_send(self) -> None:
        """Wait for the next slot to write a request to its connection."""
        await self._wait(send=True)

    def __repr__(self) -> str:
        return f"AccountRateLimit({self.requests_per_minute!r} per minute, name={self.name!r})"
