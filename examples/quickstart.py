"""Quickstart: an agent with one tool.

Runs offline on a scripted model; set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN to run it
on Workers AI. Also: `agentkit run examples/quickstart.py:agent "What is 17 * 23?"`.
"""

import os

from agentkit.agent import Agent
from agentkit.messages import ToolCall
from agentkit.models import Model
from agentkit.testing import ScriptedModel
from agentkit.tools import tool


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a * b


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()  # @cf/meta/llama-3.2-3b-instruct
    # Offline: the replies a model would give, in order.
    return ScriptedModel(
        [ToolCall(name="multiply", arguments={"a": 17, "b": 23}), "17 * 23 = 391."]
    )


agent = Agent(make_model(), [multiply], system_prompt="Use the tools for arithmetic.")

if __name__ == "__main__":
    result = agent.run_sync("What is 17 * 23?")
    print(result.output)
    print(f"{result.steps} model requests, {result.usage.tool_calls} tool call(s)")
