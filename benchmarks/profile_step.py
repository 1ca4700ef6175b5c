"""Where agentkit's time per step goes: cProfile over the in-process 4-request task.

Runs ``--runs`` sequential runs of the task in ``_peers.py`` (a ``FunctionModel`` and a sync
``add`` tool) under cProfile and prints the functions with the most time of their own, with the
share of the total. Profiling slows everything down several times; read the shares, not the
absolute numbers (``overhead.py`` gives those).

Run by hand::

    python benchmarks/profile_step.py --runs 3000 --top 25
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import STEPS_PER_RUN, make_agentkit


async def _runs(n: int) -> None:
    run_once = make_agentkit()
    for _ in range(50):
        await run_once()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        await run_once()
    profiler.disable()
    _report(profiler, n)


def _report(profiler: cProfile.Profile, runs: int) -> None:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    rows = sorted(((tt, nc, func) for func, (_, nc, tt, _, _) in entries.items()), reverse=True)[
        : ARGS.top
    ]
    steps = runs * STEPS_PER_RUN
    print(f"{runs} runs, {steps} steps; total own time {total:.3f} s under the profiler")
    print("| share | calls per step | function |")
    print("|---:|---:|---|")
    for tt, nc, (file, line, name) in rows:
        where = file.split("site-packages/")[-1].split("/agentkit/")[-1]
        print(f"| {tt / total:5.1%} | {nc / steps:.1f} | {name} ({where}:{line}) |")


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    ARGS = parser.parse_args()
    asyncio.run(_runs(ARGS.runs))


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
