"""Cold start: the time to ``import agentkit`` in a fresh interpreter, and to build 50 tools.

Each measurement runs in a new ``python`` process (so nothing is cached in memory). Bytecode
caches on disk are warm, as on any start after the first: a warm-up process writes them, even
where ``PYTHONDONTWRITEBYTECODE`` is set in the environment. Reported: the median and the best of
``--repeat`` processes, and each one's ratio to the floor (``import asyncio`` + pydantic with
one model built: what any asyncio + pydantic library pays before its own code). The processes of
each row alternate with the floor's, so a busy machine slows both alike.

Run by hand::

    python benchmarks/cold_start.py
    python benchmarks/cold_start.py --peers      # the same for pydantic-ai and openai-agents
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

IMPORT = """
import time
t0 = time.perf_counter()
import {module}
print(time.perf_counter() - t0)
"""

# What any asyncio + pydantic library pays before its own code: the floor under ``import agentkit``.
FLOOR = """
import time
t0 = time.perf_counter()
import asyncio, logging
from pydantic import BaseModel

class Probe(BaseModel):
    x: int = 0

Probe(x=1)
print(time.perf_counter() - t0)
"""

BUILD_TOOLS = """
import time
from typing import Literal
import agentkit

def make(i):
    def f(city: str, days: int = 1, unit: Literal["c", "f"] = "c", tags: list[str] | None = None) -> str:
        '''Get the forecast for a city.

        Args:
            city: The city name.
            days: How many days ahead.
            unit: The temperature unit.
            tags: Labels to attach.
        '''
        return city
    f.__name__ = f"forecast_{i}"
    return f

functions = [make(i) for i in range(50)]
t0 = time.perf_counter()
tools = [agentkit.tool(f) for f in functions]
definitions = [t.definition() for t in tools]
print(time.perf_counter() - t0)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _once(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    ).stdout
    return float(out.strip().splitlines()[-1])


def _time(code: str, repeat: int) -> tuple[float, float, float]:
    """``(median, best, ratio to the floor)`` over ``repeat`` processes; the ratio is the median
    of each process's time over the floor process timed just before it."""
    _once(code)  # the warm-up: writes the bytecode caches
    _once(FLOOR)
    samples, floors = [], []
    for _ in range(repeat):
        floors.append(_once(FLOOR))
        samples.append(_once(code))
    ratio = statistics.median(s / f for s, f in zip(samples, floors, strict=True))
    return statistics.median(samples), min(samples), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--peers", action="store_true", help="also time importing the peers")
    args = parser.parse_args()

    rows = [("floor: import asyncio + pydantic, build one model", *_time(FLOOR, args.repeat))]
    rows.append(("import agentkit", *_time(IMPORT.format(module="agentkit"), args.repeat)))
    rows.append(("build 50 tools (+ definitions)", *_time(BUILD_TOOLS, args.repeat)))
    if args.peers:
        for label, module in [("import pydantic_ai", "pydantic_ai"), ("import agents", "agents")]:
            try:
                rows.append((label, *_time(IMPORT.format(module=module), args.repeat)))
            except subprocess.CalledProcessError:
                print(f"skipping {module}: not installed", file=sys.stderr)
    print(f"{args.repeat} fresh processes each, Python {sys.version.split()[0]}")
    print("| what | median, ms | best, ms | x floor |")
    print("|---|---:|---:|---:|")
    for label, median, best, floor in rows:
        ratio = "-" if label.startswith("build") else f"{floor:.2f}"
        print(f"| {label} | {median * 1000:.0f} | {best * 1000:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
