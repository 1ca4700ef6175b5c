"""``agentkit batch --durable`` on SQLite: a crash mid-job, the same command again, --status."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("dbos")

APP = Path(__file__).with_name("_durable_batch_app.py")


def batch(tmp: Path, *extra: str, crash_on: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AGENTKIT_TEST_TOOL_LOG": str(tmp / "tools.log"),
        "AGENTKIT_TEST_CRASH_ON": crash_on,
    }
    args = [sys.executable, "-m", "agentkit", "batch", *extra]
    return subprocess.run(args, env=env, cwd=tmp, capture_output=True, text=True, timeout=180)


def test_a_crashed_durable_batch_continues_when_run_again(tmp_path: Path) -> None:
    texts = [f"item {i}" for i in range(10)] + ["refuse"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    command = (
        f"{APP}:agent", "in.jsonl", "-o", "out.jsonl", "--durable", "--no-progress",
        "--database-url", f"sqlite:///{tmp_path / 'job.sqlite'}", "--concurrency", "2",
    )  # fmt: skip

    crashed = batch(tmp_path, *command, crash_on="item 6")
    assert crashed.returncode == 5, crashed.stderr
    before = (tmp_path / "out.jsonl").read_text() if (tmp_path / "out.jsonl").exists() else ""

    done = batch(tmp_path, *command)
    assert done.returncode == 1, done.stderr  # one input fails: the model refuses it
    after = (tmp_path / "out.jsonl").read_text()
    assert after.startswith(before)  # lines written before the crash are kept as they were
    records = [json.loads(line) for line in after.splitlines()]
    assert sorted(r["id"] for r in records) == list(range(11))  # each input once, none lost
    by_id = {r["id"]: r for r in records}
    assert by_id[6]["output"] == "said ITEM 6"
    assert by_id[10]["error"]["type"] == "RunError" and "refuses" in by_id[10]["error"]["message"]
    assert by_id[0]["usage"]["total_tokens"] == 24

    # Every tool call ran once, but the one in flight at the crash: twice.
    ran = Counter((tmp_path / "tools.log").read_text().splitlines())
    assert ran == Counter({**{f"item {i}": 1 for i in range(10)}, "item 6": 2})

    # Once more: nothing runs, nothing is written again.
    again = batch(tmp_path, *command)
    assert (tmp_path / "out.jsonl").read_text() == after
    assert "0 succeeded, 0 failed, 11 skipped" in again.stderr

    status = batch(tmp_path, "--status", "--database-url", f"sqlite:///{tmp_path / 'job.sqlite'}")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("job out: 10 done, 1 failed, 0 running, 0 queued of 11 inputs")


def test_durable_batch_refuses_resume_flags(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('"x"\n')
    done = batch(tmp_path, f"{APP}:agent", "in.jsonl", "-o", "o.jsonl", "--durable", "--resume")
    assert done.returncode == 2
    assert "continues by itself" in done.stderr


def test_where_runs_are_kept_and_who_runs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkit.durable._engine import DEFAULT_DATABASE_URL, resolve_database_url
    from agentkit.jobs.durable import default_executor_id

    monkeypatch.delenv("DBOS_SYSTEM_DATABASE_URL", raising=False)
    assert resolve_database_url(None) == DEFAULT_DATABASE_URL == "sqlite:///agentkit.sqlite"
    monkeypatch.setenv("DBOS_SYSTEM_DATABASE_URL", "postgresql://db/jobs")
    assert resolve_database_url(None) == "postgresql://db/jobs"
    assert resolve_database_url("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"

    assert default_executor_id("sqlite:///jobs.sqlite", "worker") is None  # one process
    worker = default_executor_id("postgresql://db/jobs", "worker")
    batch = default_executor_id("postgresql://db/jobs", "batch")
    assert worker and batch == f"{worker}-batch"  # stable across restarts, distinct roles


def test_the_account_limit_can_stand_in_for_a_model_rate_limit() -> None:
    """Model transports call RateLimit's methods: the account limit must have every one."""
    from agentkit.jobs._store import AccountRateLimit
    from agentkit.models import RateLimit

    public = {
        n for n in dir(RateLimit) if not n.startswith("_") and callable(getattr(RateLimit, n))
    }
    assert public <= {n for n in dir(AccountRateLimit) if callable(getattr(AccountRateLimit, n))}


async def test_the_account_limit_spaces_requests_once_configured() -> None:
    from agentkit.jobs._store import AccountRateLimit

    limit = AccountRateLimit()
    limit.configure(6000)  # in this process (no shared store): 60 / (6000 * 0.97) s apart
    delays = [limit.reserve() for _ in range(4)]
    assert delays[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(delays))
    assert abs((delays[3] - delays[2]) - 60 / (6000 * 0.97)) < 1e-3
