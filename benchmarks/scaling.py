"""Scaling curves in-process: per-step CPU as the task grows, for agentkit, the peers and the floor.

One knob changes at a time from the 4-request task of ``_peers.py`` (one ``add`` tool, three
calls, a short result, a pause per model request):

- **tools offered**: ``add`` plus documented filler tools (1, 10, 50 tools);
- **steps per run**: model requests per run (4, 16, 64): the transcript each step sees grows;
- **tool output**: characters in each tool result (bare, 1,000, 10,000);
- **runs in flight**: runs started together, all truly overlapping (1, 100, 1,000, 10,000;
  peers stop at ``--peer-max-flight``, their time per run makes more too long for a shared
  machine). ``--gc-freeze`` calls ``gc.freeze()`` after the warm-up, to see what the cyclic
  garbage collector's scans of long-lived objects cost.

Each point is the process CPU time of whole runs divided by their model steps, in µs, best of
``--repeat``; sequential runs go on until ``--budget`` seconds of CPU (at least 3 runs).

Run by hand::

    python benchmarks/scaling.py                       # every curve, every installed framework
    python benchmarks/scaling.py --only agentkit --curve flight --flight 1 1000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import ANSWER, DEFAULT, FRAMEWORKS, Task
from overhead import available, in_flight


async def sequential_point(name: str, task: Task, budget: float, repeat: int) -> float:
    run_once = FRAMEWORKS[name](task)
    for _ in range(3):
        assert await run_once() == ANSWER, f"{name}: unexpected answer"
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        runs, cpu0 = 0, time.process_time()
        while runs < 3 or time.process_time() - cpu0 < budget:
            await run_once()
            runs += 1
        best = min(best, (time.process_time() - cpu0) / (runs * task.steps))
    return best * 1e6


async def flight_point(name: str, runs: int, repeat: int, freeze: bool) -> float:
    run_once = FRAMEWORKS[name](DEFAULT)
    for _ in range(3):
        assert await run_once() == ANSWER
    if freeze:
        gc.collect()
        gc.freeze()
    best = float("inf")
    try:
        for _ in range(repeat):
            cpu, _, overlap = await in_flight(run_once, runs)
            assert overlap == runs, f"{name}: only {overlap} of {runs} runs overlapped"
            best = min(best, cpu / (runs * DEFAULT.steps))
    finally:
        if freeze:
            gc.unfreeze()
    return best * 1e6


CURVES = {
    "tools": ("tools offered", "tools", [1, 10, 50]),
    "steps": ("steps per run", "steps", [4, 16, 64]),
    "output": ("tool output, chars", "output_chars", [0, 1000, 10000]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FRAMEWORKS))
    parser.add_argument("--curve", nargs="*", choices=[*CURVES, "flight"])
    parser.add_argument("--flight", nargs="*", type=int, default=[1, 100, 1000, 10000])
    parser.add_argument("--peer-max-flight", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=0.3, help="CPU seconds per point")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--gc-freeze", action="store_true")
    args = parser.parse_args()

    names = available(args.only or list(FRAMEWORKS))
    curves = args.curve or [*CURVES, "flight"]
    print(f"Python {sys.version.split()[0]}; µs of CPU per model step, best of {args.repeat}")
    for curve in curves:
        if curve == "flight":
            label, values = "runs in flight", args.flight
        else:
            label, field, values = CURVES[curve]
        print(f"\n| {label} | " + " | ".join(names) + " |")
        print("|---:|" + "---:|" * len(names))
        for value in values:
            cells = []
            for name in names:
                peer = name not in ("agentkit",) and not name.startswith("minimal")
                if curve == "flight":
                    if peer and value > args.peer_max_flight:
                        cells.append("-")
                        continue
                    us = asyncio.run(flight_point(name, value, args.repeat, args.gc_freeze))
                else:
                    task = replace(DEFAULT, **{field: value})
                    us = asyncio.run(sequential_point(name, task, args.budget, args.repeat))
                cells.append(f"{us:,.1f}")
            shown = "bare sum" if curve == "output" and value == 0 else f"{value:,}"
            print(f"| {shown} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
