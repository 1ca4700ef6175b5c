"""An offline agent for tests/test_durable_jobs.py's SQLite batches.

Its tool appends ``<text>`` to ``AGENTKIT_TEST_TOOL_LOG``; on the input named by
``AGENTKIT_TEST_CRASH_ON`` it kills the process the first time (a marker file remembers).
"""

from __future__ import annotations

import os
from pathlib import Path

from agentkit import Agent, ModelResponse, ToolCall, Usage, tool
from agentkit.testing import FunctionModel


@tool
def shout(text: str) -> str:
    """Shout a text."""
    with open(os.environ["AGENTKIT_TEST_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(text + "\n")
    marker = Path(os.environ["AGENTKIT_TEST_TOOL_LOG"] + ".crashed")
    if text == os.environ.get("AGENTKIT_TEST_CRASH_ON") and not marker.exists():
        marker.touch()
        os._exit(5)  # in the middle of the tool step
    return text.upper()


def reply(messages: list, tools: list) -> ModelResponse:
    usage = Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12)
    if messages[-1].role == "tool":
        return ModelResponse(text=f"said {messages[-1].content}", usage=usage)
    text = messages[-1].content
    if text == "refuse":
        raise ValueError("the model refuses")
    return ModelResponse(tool_calls=[ToolCall(name="shout", arguments={"text": text})], usage=usage)


agent = Agent(FunctionModel(reply), [shout])
