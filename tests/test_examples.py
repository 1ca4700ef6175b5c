"""Every example runs offline (scripted model) and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "quickstart.py": ["17 * 23 = 391.", "2 model requests, 1 tool call(s)"],
    "pydantic_argument.py": ["tool said: ordered 3 x notebook, arriving in 1 day(s)"],
    "structured_output.py": ["Alien (1979), directed by Ridley Scott", "took 2 model requests"],
    "streaming.py": [
        "[forecast -> light rain, 14 °C]",
        "[forecast -> sunny, 22 °C]",
        "[done in 2 steps]",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["PYTHONIOENCODING"] = "utf-8"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for expected in EXPECTED[name]:
        assert expected in lines, (expected, done.stdout)
