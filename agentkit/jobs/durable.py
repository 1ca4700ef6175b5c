"""The durable job runner: every input a durable run on a DBOS queue, any number of workers.

``run_durable_batch`` enqueues each input as one durable run (workflow id ``<job>:<input id>``,
so enqueueing twice is harmless), works on the queue in this process, and appends each
result line to the results file (format in :mod:`agentkit.jobs._io`) as runs finish, in any
process. Running it again after a crash continues the job: runs in flight go on from their last
completed step (a finished model request is never sent again, a finished tool call never run
again), inputs already written are not written again, none is lost.

``work`` joins a job from another process or machine (Postgres): it takes runs from the job's
queue until none is left (or forever). The job's settings (account limit, per-worker
concurrency) are stored with the job when it is first enqueued; every worker reads them.

One limit for the whole account: every model request of every worker takes a slot from
:class:`~agentkit.jobs._store.AccountRateLimit`, spaced for 97% of the limit.

Needs the ``dbos`` extra. See docs/durable.md.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS, DBOSClient, PortableWorkflowError, SetWorkflowID

from ..durable import DurableAgent, launch, shutdown
from ..durable._agent import failure_from
from ..durable._engine import resolve_database_url
from ..durable._loop import running_here, set_local_concurrency
from ..errors import ConfigurationError, RunError
from ..messages import Message, ModelEvent, ModelResponse, Usage
from ._io import (
    BatchItem,
    ResultsFile,
    error_usage,
    failure_record,
    input_key,
    iter_records,
    read_inputs,
    result_record,
)
from ._report import DURABLE_PROMISE, BatchReport, JobReporter
from ._store import AccountRateLimit, JobSettings, JobStore

if TYPE_CHECKING:
    from ..settings import ModelSettings
    from ..tools import Tool

__all__ = [
    "DEFAULT_REQUESTS_PER_MINUTE",
    "JobStatus",
    "default_job_id",
    "job_status",
    "run_durable_batch",
    "work",
]

logger = logging.getLogger("agentkit.jobs")

#: Workers AI's default limit for text generation: 300 requests a minute per account.
DEFAULT_REQUESTS_PER_MINUTE = 300.0

_POLL = 0.5  # seconds between looks at the database for finished runs
_SETTLE = 120.0
_ENQUEUE_AT_ONCE = 8  # enqueue transactions in flight at once (Postgres)  # look back this far for runs finished since the last look (clock skew)


def default_job_id(output: str | os.PathLike[str]) -> str:
    """A job's name when none is given: the results file's name without its extension."""
    return Path(output).stem or "job"


def _check_job_id(job_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", job_id):
        raise ConfigurationError(
            f"job name {job_id!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return job_id


def _queue_name(job_id: str) -> str:
    return f"agentkit-job-{job_id}"


def _run_id(job_id: str, item: BatchItem) -> str:
    return f"{job_id}:{input_key(item.id)}"


def default_executor_id(url: str, role: str) -> str | None:
    """This process's name among a job's workers when none is given.

    SQLite: DBOS's default (one process). Postgres: the machine's name, with ``-batch`` for the
    process that enqueues, so that a restarted process finds its runs again; two workers on
    one machine need ``executor_id`` (``--executor-id``) each.
    """
    if url.startswith("sqlite"):
        return None
    host = socket.gethostname() or "worker"
    return f"{host}-batch" if role == "batch" else host


# --- the account limit, in front of every model request -----------------------------------------


class _LimitedModel:
    """A model without an HTTP transport (an offline one) behind the account limit."""

    def __init__(self, model: Any, limit: AccountRateLimit) -> None:
        self.model = model
        self.limit = limit

    @property
    def model_name(self) -> str:
        return str(self.model.model_name)

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        await self.limit.acquire()
        response: ModelResponse = await self.model.request(messages, tools, settings)
        return response

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        await self.limit.acquire()
        async for event in self.model.stream(messages, tools, settings):
            yield event


def _limit_model(durable: DurableAgent[Any]) -> AccountRateLimit:
    """Put the account limit in front of the agent's model, before the engine starts runs."""
    limit = AccountRateLimit()
    loop = durable._loop
    transport = getattr(loop.model, "_transport", None)
    if transport is not None and hasattr(transport, "rate_limit"):
        transport.rate_limit = limit  # every HTTP attempt, retries included, takes a slot
        # Build an HTTP client now: the first one costs a few hundred milliseconds (imports,
        # TLS set-up), and a request that late after its slot would bunch with the next one.
        make_client = getattr(transport, "client", None)
        client = make_client() if callable(make_client) else None
        limit.at_send = client is not None and _writes_traced(client)
    else:
        loop.model = _LimitedModel(loop.model, limit)
    return limit


def _writes_traced(client: Any) -> bool:
    """Whether the transport takes a second slot as each request is written (httpcore's hook)."""
    try:
        from ..models._transport import _traces_sends
    except ImportError:  # pragma: no cover - another transport layout
        return False
    return bool(_traces_sends(client))


def _share(settings: Sequence[JobSettings], concurrency: int | None) -> int:
    """Runs at once in this process: the jobs' setting, lowered by the worker's own."""
    share = min(s.concurrency for s in settings)
    return share if concurrency is None else min(share, concurrency)


# --- enqueueing and writing results --------------------------------------------------------------


@dataclass
class JobStatus:
    """A job's progress across every worker: runs by DBOS status, and its settings."""

    settings: JobSettings
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return self.counts["SUCCESS"]

    @property
    def failed(self) -> int:
        counts = self.counts
        return counts["ERROR"] + counts["MAX_RECOVERY_ATTEMPTS_EXCEEDED"] + counts["CANCELLED"]

    @property
    def running(self) -> int:
        return self.counts["PENDING"]

    @property
    def queued(self) -> int:
        return self.counts["ENQUEUED"]

    def __str__(self) -> str:
        s = self.settings
        return (
            f"job {s.job_id}: {self.done} done, {self.failed} failed, {self.running} running, "
            f"{self.queued} queued of {s.total} inputs "
            f"(limit {s.requests_per_minute:g} requests/min, concurrency {s.concurrency} per worker)"
        )


def job_status(database_url: str | None = None, job: str | None = None) -> list[JobStatus]:
    """The progress of every job in a database (or of ``job``), without working on it."""
    url = resolve_database_url(database_url)
    store = JobStore(url)
    try:
        jobs = store.jobs()
    finally:
        store.close()
    if job is not None:
        jobs = [j for j in jobs if j.job_id == job]
        if not jobs:
            raise ConfigurationError(f"there is no job named {job!r} in {_safe_url(url)}")
    client = DBOSClient(system_database_url=url)
    try:
        out = []
        for settings in jobs:
            runs = client.list_workflows(
                workflow_id_prefix=f"{settings.job_id}:", load_input=False, load_output=False
            )
            out.append(JobStatus(settings, Counter(str(r.status) for r in runs)))
        return out
    finally:
        client.destroy()


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


async def _enqueue(
    durable: DurableAgent[Any], settings: JobSettings, items: list[BatchItem], *, one_writer: bool
) -> int:
    """Enqueue the inputs that are not in the database yet; returns how many were."""
    queue = await DBOS.register_queue_async(
        settings.queue,
        worker_concurrency=settings.concurrency,
        polling_interval_sec=0.25,
        on_conflict="never_update",
    )
    known = {
        w.workflow_id
        for w in await DBOS.list_workflows_async(
            workflow_id_prefix=f"{settings.job_id}:", load_input=False, load_output=False
        )
    }
    todo = [item for item in items if _run_id(settings.job_id, item) not in known]
    # One transaction per input: several at once on Postgres; one by one on SQLite (one writer).
    gate = asyncio.Semaphore(1 if one_writer else _ENQUEUE_AT_ONCE)

    async def enqueue(item: BatchItem) -> None:
        request = durable._request(item.input, None, None, None, stream=False)
        async with gate:
            with SetWorkflowID(_run_id(settings.job_id, item)):
                await queue.enqueue_async(durable._workflow, request)

    for start in range(0, len(todo), 1000):
        await asyncio.gather(*(enqueue(item) for item in todo[start : start + 1000]))
    return len(todo)


def _written_ids(output: Path) -> set[str]:
    """Input keys with any line (result or failure) in the results file."""
    if not output.exists():
        return set()
    return {input_key(record["id"]) for record in iter_records(output)}


def _record(durable: DurableAgent[Any], item: BatchItem, status: Any) -> tuple[dict[str, Any], Usage, Exception | None]:  # fmt: skip
    if status.status == "SUCCESS" and isinstance(status.output, dict):
        result = durable._decode(status.output)
        return (
            result_record(item, status.output["output"], result.usage, result.steps),
            result.usage,
            None,
        )
    error = status.error
    if isinstance(error, PortableWorkflowError):
        error = failure_from(error)
    if not isinstance(error, Exception):
        error = RunError(
            f"run {status.workflow_id} ended as {status.status} (it kept crashing the worker "
            "that recovered it)"
            if status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
            else f"run {status.workflow_id} was cancelled"
            if status.status == "CANCELLED"
            else f"run {status.workflow_id} ended as {status.status}"
        )
    return failure_record(item, error), error_usage(error), error


async def run_durable_batch(
    durable: DurableAgent[Any],
    inputs: str | os.PathLike[str] | Sequence[Any],
    *,
    output: str | os.PathLike[str],
    database_url: str | None = None,
    job: str | None = None,
    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
    concurrency: int = 4,
    executor_id: str | None = None,
    progress: bool | None = None,
    reporter: JobReporter | None = None,
) -> BatchReport:
    """Run ``durable`` on every input as durable runs on a DBOS queue (see the module docstring).

    Args:
        durable: The durable agent, created before this call (the engine starts here).
        inputs: As for :func:`~agentkit.jobs.run_batch`.
        output: The results file; lines already in it are kept and not written again.
        database_url: The job database (``None``: ``DBOS_SYSTEM_DATABASE_URL``, else
            ``sqlite:///agentkit.sqlite``). SQLite serves one process; use Postgres for more.
        job: The job's name (default: the results file's name without extension).
        requests_per_minute: The account limit, for every worker together; stored with the job
            the first time it is enqueued (later values are ignored).
        concurrency: Runs at once per worker; stored with the job (this process may go lower).
        executor_id: This process's name among the job's workers: restarted with it, a
            process recovers its runs (default: :func:`default_executor_id`).
        progress, reporter: As for :func:`~agentkit.jobs.run_batch`; the bar counts the whole
            job, whoever runs it.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    items = read_inputs(inputs)
    job_id = _check_job_id(job or default_job_id(output))
    url = resolve_database_url(database_url)
    reporter = reporter or JobReporter(
        progress, name="batch", resume_hint="run it again", promise=DURABLE_PROMISE
    )
    # The limits go in first (the engine starts recovered runs at once), then the engine: on
    # Postgres, DBOS creates the database if it does not exist yet; then the job's settings.
    limit = _limit_model(durable)
    set_local_concurrency(concurrency)
    executor_id = executor_id or default_executor_id(url, "batch")
    launch(url, executor_id=executor_id, queues=[_queue_name(job_id)])
    try:
        store = JobStore(url)
        try:
            wanted = JobSettings(
                job_id=job_id,
                workflow=durable.workflow_name,
                queue=_queue_name(job_id),
                requests_per_minute=float(requests_per_minute),
                concurrency=concurrency,
                total=len(items),
            )
            settings = store.save(wanted)
            if settings != wanted:
                logger.info("job %s continues with its stored settings: %s", job_id, settings)
            limit.configure(settings.requests_per_minute, store)
            set_local_concurrency(_share([settings], concurrency))
            added = await _enqueue(durable, settings, items, one_writer=store.is_sqlite)
            logger.info("job %s: %d inputs, %d enqueued now", job_id, len(items), added)
            return await _collect(durable, settings, items, Path(output), reporter)
        finally:
            store.close()
    finally:
        shutdown()


async def _collect(
    durable: DurableAgent[Any],
    settings: JobSettings,
    items: list[BatchItem],
    output: Path,
    reporter: JobReporter,
) -> BatchReport:
    """Append a line for each run as it finishes (in any process), until every input has one."""
    by_run = {_run_id(settings.job_id, item): item for item in items}
    written = _written_ids(output)
    with ResultsFile.open(output, resume=True) as results:
        report = BatchReport(output=results.path, total=len(items))
        report.skipped = sum(1 for item in items if input_key(item.id) in written)
        todo = [item for item in items if input_key(item.id) not in written]
        reporter.started(report, todo, resume=bool(report.skipped))
        since: str | None = None
        try:
            while todo and report.finished < report.total:
                started = time.time()
                # Ids only (cheap), then the results of the runs not written yet.
                ended = await DBOS.list_workflows_async(
                    workflow_id_prefix=f"{settings.job_id}:",
                    status=["SUCCESS", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "CANCELLED"],
                    completed_after=since,
                    load_input=False,
                    load_output=False,
                )
                new = [
                    s.workflow_id
                    for s in ended
                    if s.workflow_id in by_run
                    and input_key(by_run[s.workflow_id].id) not in written
                ]
                finished = (
                    await DBOS.list_workflows_async(workflow_ids=new, load_input=False)
                    if new
                    else []
                )
                for status in finished:
                    item = by_run.get(status.workflow_id)
                    if item is None or input_key(item.id) in written:
                        continue
                    record, usage, error = _record(durable, item, status)
                    results.write(record)
                    written.add(input_key(item.id))
                    report.usage = report.usage + usage
                    if error is None:
                        report.succeeded += 1
                    else:
                        report.failed += 1
                        report.failed_ids.append(item.id)
                    reporter.input_done(item, error)
                since = datetime.datetime.fromtimestamp(
                    started - _SETTLE, tz=datetime.UTC
                ).isoformat()
                if report.finished < report.total:
                    await asyncio.sleep(_POLL)
        except BaseException as exc:
            reporter.stopped(exc)
            raise
        finally:
            reporter.close()
    return report


async def work(
    durable: DurableAgent[Any],
    *,
    database_url: str | None = None,
    executor_id: str | None = None,
    concurrency: int | None = None,
    forever: bool = False,
) -> int:
    """Work on every job of ``durable``'s agent in the database.

    Returns how many runs of these jobs have finished under this executor id (this time and
    before).

    Runs left in flight by this executor id (a killed worker restarted) are recovered first.
    Returns when no run of these jobs is queued and none runs here, unless ``forever``.
    """
    url = resolve_database_url(database_url)
    store = JobStore(url)
    try:
        jobs = store.jobs(durable.workflow_name)
        if not jobs:
            raise ConfigurationError(
                f"no job for {durable.workflow_name!r} in {_safe_url(url)}; start one with "
                "agentkit batch ... --durable --database-url URL"
            )
        limit = _limit_model(durable)
        limit.configure(min(j.requests_per_minute for j in jobs), store)
        set_local_concurrency(_share(jobs, concurrency))
        executor_id = executor_id or default_executor_id(url, "worker")
        launch(url, executor_id=executor_id, queues=[j.queue for j in jobs])
        try:
            prefixes = [f"{j.job_id}:" for j in jobs]
            me = DBOS.executor_id
            idle = 0
            while True:
                await asyncio.sleep(_POLL * 2)
                queued = await DBOS.list_workflows_async(
                    workflow_id_prefix=prefixes, status="ENQUEUED", load_input=False,
                    load_output=False, limit=1,
                )  # fmt: skip
                mine = await DBOS.list_workflows_async(
                    workflow_id_prefix=prefixes, status="PENDING", executor_id=me,
                    load_input=False, load_output=False, limit=1,
                )  # fmt: skip
                busy = bool(queued or mine or running_here())
                idle = 0 if busy else idle + 1
                if not forever and idle >= 2:  # twice in a row: nothing left, nothing recovering
                    break
            ended = await DBOS.list_workflows_async(
                workflow_id_prefix=prefixes,
                executor_id=me,
                status=["SUCCESS", "ERROR"],
                load_input=False,
                load_output=False,
            )
            return len(ended)
        finally:
            shutdown()
    finally:
        store.close()
