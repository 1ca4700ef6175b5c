"""Framework overhead in-process: agentkit next to pydantic-ai, openai-agents and a minimal loop.

Each framework runs the same 4-request task (see ``_peers.py``) on its own in-process fake model
that pauses once per model request (``await asyncio.sleep(0)``), so what is measured is the
framework alone, and runs started together truly overlap. Reported per framework:

- per-step CPU: process CPU time (all threads) of sequential runs over model steps, in µs;
- the same with ``--in-flight`` runs started together (the peak number of runs actually in
  progress at once is checked and printed: it must equal ``--in-flight``);
- runs/s (wall clock) one at a time and in flight: on a shared machine these move with the
  other load, the CPU figures much less;
- peak memory per run while ``--in-flight`` runs are in progress at once (tracemalloc, in a
  separate pass so it does not slow the timings), with agentkit's test model not recording;
- the ratios to agentkit and to the minimal loop (the floor: pydantic messages, validated
  arguments, no events, retries, approvals or per-call context).

Run by hand (peers come from the ``bench`` extra)::

    pip install -e ".[bench]"
    python benchmarks/overhead.py              # all installed frameworks
    python benchmarks/overhead.py --only agentkit --runs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import ANSWER, DEFAULT, FRAMEWORKS, STEPS_PER_RUN, RunOnce


class Overlap:
    """Wraps ``run_once`` to count how many runs are in progress at once."""

    def __init__(self, run_once: RunOnce) -> None:
        self.run_once = run_once
        self.now = self.peak = 0

    async def __call__(self) -> str:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await self.run_once()
        finally:
            self.now -= 1


async def _sequential(run_once: RunOnce, runs: int) -> tuple[float, float]:
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(runs):
        await run_once()
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def in_flight(run_once: RunOnce, runs: int, collect: bool = True) -> tuple[float, float, int]:
    """``(cpu, wall, peak overlap)`` of ``runs`` runs started together (after a full garbage
    collection unless ``collect`` is false)."""
    counted = Overlap(run_once)
    if collect:
        gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outputs = await asyncio.gather(*(counted() for _ in range(runs)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert all(o == ANSWER for o in outputs), "a run did not finish with the expected answer"
    return cpu, wall, counted.peak


async def _peak_memory(run_once: RunOnce, runs: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        await asyncio.gather(*(run_once() for _ in range(runs)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / runs


async def measure(name: str, runs: int, flight: int, repeat: int) -> dict[str, Any]:
    run_once = FRAMEWORKS[name](DEFAULT)
    for _ in range(20):  # warm up: imports, caches, first-call paths
        assert await run_once() == ANSWER, f"{name}: unexpected answer"
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(repeat):
        cpu, wall = await _sequential(run_once, runs)
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
    best_flight, best_flight_cpu, overlap = float("inf"), float("inf"), 0
    for _ in range(repeat):
        cpu, wall, overlap = await in_flight(run_once, flight)
        best_flight, best_flight_cpu = min(best_flight, wall), min(best_flight_cpu, cpu)
    memory = await _peak_memory(run_once, flight)
    return {
        "framework": name,
        "step_cpu_us": best_cpu / (runs * STEPS_PER_RUN) * 1e6,
        "runs_per_s_sequential": runs / best_wall,
        "runs_per_s_in_flight": flight / best_flight,
        "step_cpu_us_in_flight": best_flight_cpu / (flight * STEPS_PER_RUN) * 1e6,
        "peak_overlap": overlap,
        "peak_bytes_per_in_flight_run": memory,
    }


def available(names: list[str]) -> list[str]:
    found = []
    for name in names:
        try:
            FRAMEWORKS[name](DEFAULT)
        except ImportError as exc:
            print(f"skipping {name}: not installed ({exc.name})", file=sys.stderr)
        else:
            found.append(name)
    return found


def _table(rows: list[dict[str, Any]], flight: int) -> str:
    head = (
        f"| framework | µs per step (CPU), one at a time | µs per step (CPU), {flight} in flight "
        f"| runs/s (wall), one at a time | runs/s (wall), {flight} in flight "
        "| peak overlap | KiB per in-flight run |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['framework']} | {r['step_cpu_us']:.1f} | {r['step_cpu_us_in_flight']:.1f} "
            f"| {r['runs_per_s_sequential']:.0f} | {r['runs_per_s_in_flight']:.0f} "
            f"| {r['peak_overlap']} | {r['peak_bytes_per_in_flight_run'] / 1024:.1f} |"
        )
    base = next((r for r in rows if r["framework"] == "agentkit"), None)
    floor = next((r for r in rows if r["framework"].startswith("minimal")), None)
    if base and floor:
        lines.append(
            f"\nagentkit / minimal loop: step CPU x{base['step_cpu_us'] / floor['step_cpu_us']:.2f}"
        )
    if base:
        for r in rows:
            if r is base or r is floor:
                continue
            lines.append(
                f"{r['framework']} / agentkit: step CPU x{r['step_cpu_us'] / base['step_cpu_us']:.1f} "
                f"one at a time, x{r['step_cpu_us_in_flight'] / base['step_cpu_us_in_flight']:.1f} "
                f"in flight; memory x{r['peak_bytes_per_in_flight_run'] / base['peak_bytes_per_in_flight_run']:.1f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FRAMEWORKS), help="frameworks to run")
    parser.add_argument("--runs", type=int, default=500, help="sequential runs per repeat")
    parser.add_argument("--in-flight", type=int, default=1000, help="runs started together")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the best is kept")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    names = available(args.only or list(FRAMEWORKS))
    rows = [asyncio.run(measure(n, args.runs, args.in_flight, args.repeat)) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"Python {platform.python_version()} on {platform.machine()}, {args.runs} sequential runs, "
            f"{args.in_flight} in flight, best of {args.repeat}; {STEPS_PER_RUN} model steps per run, "
            "one pause per model request"
        )
        print(_table(rows, args.in_flight))


if __name__ == "__main__":
    main()
