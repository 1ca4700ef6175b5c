"""A durable agent run in a subprocess by tests/test_durable.py, crashed on demand.

    python _durable_app.py DATABASE_URL RUN_ID LOG_FILE [CRASH]

Prints the run's result as JSON. Every model request and tool call appends one line to LOG_FILE
as it starts, so the test counts what ran. CRASH kills the process in the middle of a step, the
first time it runs: ``tool:convert`` (os._exit in the tool) or ``request:3`` (SIGKILL during
the third model request).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from agentkit import Agent, ModelResponse, ToolCall, ToolContext, Usage, tool
from agentkit.durable import DurableAgent, launch
from agentkit.models.scripted import FunctionModel

DATABASE_URL, RUN_ID, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
CRASH = sys.argv[4] if len(sys.argv) > 4 else ""


def log(line: str) -> None:
    with open(LOG, "a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


@tool
async def lookup(context: ToolContext[None], city: str) -> str:
    """The temperature in a city, in Celsius."""
    log(f"tool lookup {city} {context.idempotency_key}")
    await asyncio.sleep(0.05 if city == "Paris" else 0.0)  # Paris finishes last
    return {"Paris": "18", "Rome": "24"}[city]


@tool
def convert(context: ToolContext[None], celsius: float) -> str:
    """Celsius to Fahrenheit."""
    log(f"tool convert {celsius:g} {context.idempotency_key}")
    if CRASH == "tool:convert":
        os._exit(3)  # in the middle of the tool step
    return f"{celsius * 9 / 5 + 32:g}"


def reply(messages: list, tools: list) -> ModelResponse:
    requests = sum(1 for m in messages if m.role == "assistant") + 1
    log(f"request {requests}")
    if f"request:{requests}" == CRASH:
        os.kill(os.getpid(), signal.SIGKILL)  # in the middle of the model request step
    usage = Usage(
        prompt_tokens=100 * requests, completion_tokens=10, total_tokens=100 * requests + 10
    )
    if requests == 1:
        calls = [ToolCall(name="lookup", arguments={"city": c}) for c in ("Paris", "Rome")]
        return ModelResponse(tool_calls=calls, usage=usage, finish_reason="tool_calls")
    if requests == 2:
        return ModelResponse(
            text="Converting Rome.",
            tool_calls=[ToolCall(name="convert", arguments={"celsius": 24})],
            usage=usage,
            finish_reason="tool_calls",
        )
    return ModelResponse(text="Rome is warmer: 75.2 F.", usage=usage, finish_reason="stop")


agent = Agent(FunctionModel(reply), [lookup, convert], system_prompt="Answer with the tools.")
durable = DurableAgent(agent)

if __name__ == "__main__":
    launch(DATABASE_URL)
    result = durable.run_sync("Which is warmer, Paris or Rome, in Fahrenheit?", run_id=RUN_ID)
    print(json.dumps(result.to_dict(), sort_keys=True))
