"""``import agentkit`` loads the core only: no optional extra, no HTTP backend, no pattern."""

from __future__ import annotations

import json
import subprocess
import sys

# Top-level packages that only an extra or a backend may bring in.
HEAVY = ("dbos", "mcp", "opentelemetry", "httpx", "httpcore", "tenacity")
# agentkit's own modules that load on first use only.
LAZY = ("agentkit.patterns", "agentkit.durable", "agentkit.mcp", "agentkit.jobs")
# Under agentkit.models only the protocol is part of the core.
MODELS_CORE = {"agentkit.models", "agentkit.models.base"}

PROBE = """
import json, sys
{code}
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _is_heavy(name: str) -> bool:
    if name.split(".")[0] in HEAVY:
        return True
    if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY):
        return True
    return name.startswith("agentkit.models.") and name not in MODELS_CORE


def _heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if _is_heavy(name))


def test_import_agentkit_loads_nothing_heavy() -> None:
    loaded = _loaded("import agentkit")
    assert "agentkit.agent" in loaded
    assert _heavy(loaded) == []


def test_the_probe_sees_a_backend_once_it_is_used() -> None:
    # The same probe after touching a backend: proves the check above can fail.
    loaded = _heavy(_loaded("import agentkit\nagentkit.WorkersAI"))
    assert "httpx" in loaded
    assert "agentkit.models.workers_ai" in loaded
