"""Scaling curves in-process: per-step CPU as the task grows, for agentkit, the peers and the floor.

One knob changes at a time from the 4-request task of ``_peers.py`` (one ``add`` tool, three
calls, a short result, a pause per model request):

- **tools offered**: ``add`` plus documented filler tools (1, 10, 50 tools);
- **steps per run**: model requests per run (4, 16, 64): the transcript each step sees grows;
- **tool output**: characters in each tool result (bare, 1,000, 10,000);
- **runs in flight**: runs started together, all truly overlapping (1, 100, 1,000, 10,000;
  peers stop at ``--peer-max-flight``, their time per run makes more too long for a shared
  machine). ``--gc-freeze`` calls ``gc.freeze()`` after the warm-up, to see what the cyclic
  garbage collector's scans of long-lived objects cost; ``--gc-threshold N`` sets the first
  generation's threshold (700 by default), so collections run less often.

Each point is the process CPU time of whole runs divided by their model steps, in µs, best of
``--repeat``; sequential runs (or batches of runs in flight) go on until ``--budget`` seconds of
CPU (at least 3 runs, or one batch). In-flight points also give the share of that CPU spent in
the garbage collector (timed through ``gc.callbacks``).

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


class GCTimer:
    """Time spent in the cyclic garbage collector, through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.total += time.process_time() - self._start

    def __enter__(self) -> GCTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def flight_point(
    name: str, runs: int, repeat: int, freeze: bool, budget: float
) -> tuple[float, float]:
    """``(µs of CPU per step, share of it in the garbage collector)`` with ``runs`` in flight;
    batches of ``runs`` repeat until ``budget`` seconds of CPU."""
    run_once = FRAMEWORKS[name](DEFAULT)
    for _ in range(3):
        assert await run_once() == ANSWER
    if freeze:
        gc.collect()
        gc.freeze()
    best, share = float("inf"), 0.0
    try:
        for _ in range(repeat):
            cpu = 0.0
            batches = 0
            with GCTimer() as timer:
                while batches == 0 or cpu < budget:
                    used, _, overlap = await in_flight(run_once, runs, collect=False)
                    assert overlap == runs, f"{name}: only {overlap} of {runs} runs overlapped"
                    cpu += used
                    batches += 1
            per_step = cpu / (batches * runs * DEFAULT.steps)
            if per_step < best:
                best, share = per_step, timer.total / cpu
    finally:
        if freeze:
            gc.unfreeze()
    return best * 1e6, share


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
    parser.add_argument(
        "--gc-threshold", type=int, help="gc.set_threshold(N) for the first generation"
    )
    args = parser.parse_args()

    names = available(args.only or list(FRAMEWORKS))
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
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
                    us, gc_share = asyncio.run(
                        flight_point(name, value, args.repeat, args.gc_freeze, args.budget)
                    )
                    cells.append(f"{us:,.1f} (GC {gc_share:.0%})")
                    continue
                else:
                    task = replace(DEFAULT, **{field: value})
                    us = asyncio.run(sequential_point(name, task, args.budget, args.repeat))
                cells.append(f"{us:,.1f}")
            shown = "bare sum" if curve == "output" and value == 0 else f"{value:,}"
            print(f"| {shown} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
