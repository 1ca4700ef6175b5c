"""The agent of tests/test_durable_postgres.py's job, run by ``agentkit batch``/``worker``.

It talks to the test's wire server (``AGENTKIT_TEST_WIRE``) and its one tool appends a line to
``AGENTKIT_TEST_TOOL_LOG`` as it starts: ``<worker> <run id> <idempotency key>``. Worker ``w1``
takes a second per tool call, so the test can kill it in the middle of one.
"""

from __future__ import annotations

import asyncio
import os

from agentkit import Agent, ToolContext, WorkersAI, tool

WORKER = os.environ.get("AGENTKIT_TEST_WORKER", "?")


@tool
async def stamp(context: ToolContext[None], text: str) -> str:
    """Stamp a text."""
    line = f"{WORKER} {context.run_id} {context.idempotency_key}\n"
    with open(os.environ["AGENTKIT_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:  # noqa: ASYNC230
        log.write(line)
    await asyncio.sleep(1.0 if WORKER == "w1" else 0.1)
    return text.upper()


agent = Agent(
    WorkersAI(
        account_id="acct",
        api_token=os.environ["AGENTKIT_TEST_TOKEN"],
        base_url=os.environ["AGENTKIT_TEST_WIRE"],
        backoff_base=0.001,
        backoff_max=0.004,
        max_retries=2,
        timeout=10.0,
    ),
    [stamp],
)
