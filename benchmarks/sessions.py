"""What a session costs: per step of a run, and to load a long conversation.

A scripted 5-step run (4 tool steps and an answer) is repeated without a session, with a
``MemorySession`` and with ``SQLiteSession`` in both ``synchronous`` modes; each run uses a new
session id, so the history does not grow. The SQLite file goes in the current directory (its
disk is what is measured). Then a conversation of ``--messages`` messages is stored and loaded.

Run by hand::

    python benchmarks/sessions.py
    python benchmarks/sessions.py --runs 500 --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from agentkit import Agent, MemorySession, Message, Session, SQLiteSession, ToolCall
from agentkit.models.scripted import FunctionModel
from agentkit.tools import tool

STEPS = 5


@tool
def step(n: int) -> str:
    """One step.

    Args:
        n: the step number
    """
    return f"step {n} done"


def reply(messages: list[Message], tools: list[Any]) -> Any:
    done = sum(1 for m in messages if m.role == "tool")
    return ToolCall(name="step", arguments={"n": done}) if done < STEPS - 1 else "done"


async def per_step(make: Any, runs: int) -> float:
    """Milliseconds per step of ``runs`` sequential runs, each on a fresh session."""
    agent = Agent(FunctionModel(reply, record=False), [step])
    started = time.perf_counter()
    for i in range(runs):
        session: Session | None = make(f"s{i}")
        if session is None:
            await agent.run("go")
        else:
            await agent.run("go", session=session)
    return (time.perf_counter() - started) / runs / STEPS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per configuration")
    parser.add_argument("--messages", type=int, default=10_000, help="messages to load")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=".") as folder:
        path = Path(folder) / "bench.db"
        normal = SQLiteSession("x", path)
        full = SQLiteSession("x", path, synchronous="FULL")

        def on(store: SQLiteSession) -> Any:
            def make(session_id: str) -> SQLiteSession:
                store._id = session_id  # one connection, a new conversation each run
                return store

            return make

        configurations: dict[str, Any] = {
            "no session": lambda _: None,
            "MemorySession": MemorySession,
            'SQLiteSession synchronous="NORMAL"': on(normal),
            'SQLiteSession synchronous="FULL"': on(full),
        }
        asyncio.run(per_step(configurations["no session"], args.runs))  # warm up
        print("| configuration | ms per step (best of 3) |")
        print("|---|---:|")
        for name, make in configurations.items():
            best = min(asyncio.run(per_step(make, args.runs)) for _ in range(3))
            print(f"| {name} | {best:.3f} |")

        big = SQLiteSession("big", path)
        turn = [
            Message.user("a question of a few words " * 3),
            Message.assistant("", [ToolCall(name="step", arguments={"n": 1})]),
            Message(role="tool", content="a result " * 20, tool_call_id="c", name="step"),
            Message.assistant("an answer of some length " * 6),
        ]
        big.append_sync(turn * (args.messages // len(turn)))
        started = time.perf_counter()
        loaded = big.load_sync()
        took = time.perf_counter() - started
        print(f"\nloading {len(loaded)} messages: {took * 1000:.0f} ms")
        for store in (normal, full, big):
            store.close()


if __name__ == "__main__":
    main()
