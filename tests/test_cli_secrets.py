"""No form of the API token reaches the output of any command, end to end.

Each command runs as a real ``agentkit`` process with the token in ``CLOUDFLARE_API_TOKEN``,
against a local server that answers, fails while quoting the token back (as a broken proxy
might), or drops the connection. The tokens are the awkward ones: with a trailing newline (as
read from a file or a secret store) and one shorter than 8 characters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit.testing import Reply, WireRequest, WireServer

TOKENS = {
    "trailing-newline": "sk-cli-Secret-4f7a9c2e81d3b6\n",
    "short": "Qz7xK9",
}

# The prompt picks the server's behaviour.
PROMPTS = ["ok", "echo-fail", "drop"]

AGENT_FILE = textwrap.dedent(
    """
    import os
    from agentkit.agent import Agent
    from agentkit.models import WorkersAI

    agent = Agent(WorkersAI(base_url=os.environ["BASE_URL"], max_retries=0, timeout=10))
    """
)


def _server_for(token: str) -> WireServer:
    core = token.strip()

    def handler(request: WireRequest) -> Reply | str:
        prompt = request.messages[-1].get("content", "") if request.messages else ""
        if prompt == "echo-fail":
            # A server that quotes the credential it was sent back in its error.
            return Reply.error(400, code=5006, message=f"bad request for token {core} ({token!r})")
        if prompt == "drop":
            return Reply.drop()
        return "fine"

    return WireServer(handler=handler)


@pytest.fixture(scope="module", params=sorted(TOKENS), ids=sorted(TOKENS))
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    token = TOKENS[request.param]
    folder = tmp_path_factory.mktemp(f"secrets-{request.param}")
    agent_file = folder / "agent.py"
    agent_file.write_text(AGENT_FILE)
    with _server_for(token) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
        env.update(
            BASE_URL=server.base_url,
            CLOUDFLARE_ACCOUNT_ID="acct",
            CLOUDFLARE_API_TOKEN=token,
            PYTHONIOENCODING="utf-8",
        )
        yield {
            "token": token,
            "env": env,
            "target": f"{agent_file}:agent",
            "dir": folder,
        }
        assert server.violations == []


def agentkit(
    setup: dict[str, Any], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=setup["env"],
        check=False,
    )


def assert_no_token(token: str, *texts: str) -> None:
    core = token.strip()
    forms = {core, token, repr(token)[1:-1], json.dumps(token)[1:-1]}
    for text in texts:
        for form in forms:
            assert form not in text, f"the token ({form!r}) leaked into:\n{text}"


@pytest.mark.parametrize("flags", [[], ["--json"], ["--stream"]], ids=["plain", "json", "stream"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_run_never_prints_the_token(setup: dict[str, Any], flags: list[str], prompt: str) -> None:
    done = agentkit(setup, "run", setup["target"], prompt, *flags)
    assert_no_token(setup["token"], done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    if prompt == "ok":  # the token, stripped, works
        assert done.returncode == 0 and "fine" in done.stdout, done.stderr
    else:
        assert done.returncode == 1, done.stderr


def test_chat_never_prints_the_token(setup: dict[str, Any]) -> None:
    done = agentkit(setup, "chat", setup["target"], stdin="ok\necho-fail\ndrop\n/exit\n")
    assert_no_token(setup["token"], done.stdout, done.stderr)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0] == "fine"
    assert done.stderr.count("error: ") == 2


def test_batch_never_writes_the_token(setup: dict[str, Any]) -> None:
    folder: Path = setup["dir"]
    inputs = folder / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": p, "input": p}) + "\n" for p in PROMPTS))
    out = folder / "results.jsonl"
    done = agentkit(
        setup, "batch", setup["target"], str(inputs), "-o", str(out), "--overwrite", "--no-progress"
    )
    assert out.exists(), done.stderr
    assert_no_token(setup["token"], done.stdout, done.stderr, out.read_text(encoding="utf-8"))
    assert "Traceback" not in done.stderr
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert records["ok"]["output"] == "fine"
    assert records["echo-fail"]["error"]["type"] == "BadRequestError"
    assert records["drop"]["error"]["type"] == "ModelConnectionError"
