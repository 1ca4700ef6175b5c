"""Streaming: print text as it arrives, and each tool call as it happens.

Runs offline on a scripted model; set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN to run it
on Workers AI.
"""

import asyncio
import os

from agentkit.agent import Agent, RunFinished, ToolCallFinished, ToolCallStarted
from agentkit.messages import TextDelta, ToolCall
from agentkit.models import Model
from agentkit.testing import ScriptedModel
from agentkit.tools import tool

FORECASTS = {"paris": "light rain, 14 °C", "lisbon": "sunny, 22 °C"}


@tool
async def forecast(city: str) -> str:
    """Tomorrow's weather forecast for a city.

    Args:
        city: the city name, e.g. Paris
    """
    await asyncio.sleep(0.01)  # a real tool would call a weather service here
    return FORECASTS.get(city.lower(), "no forecast for that city")


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()
    return ScriptedModel(
        [
            [
                ToolCall(name="forecast", arguments={"city": "Paris"}),
                ToolCall(name="forecast", arguments={"city": "Lisbon"}),
            ],
            "Take an umbrella in Paris (light rain, 14 °C); Lisbon will be sunny and 22 °C.",
        ]
    )


agent = Agent(make_model(), [forecast])


async def main() -> None:
    async for event in agent.stream("What's the weather tomorrow in Paris and Lisbon?"):
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, ToolCallStarted):
            print(f"[calling {event.call.name}({event.call.arguments})]")
        elif isinstance(event, ToolCallFinished):
            print(f"[{event.call.name} -> {event.result.content}]")
        elif isinstance(event, RunFinished):
            print(f"\n[done in {event.result.steps} steps]")


if __name__ == "__main__":
    asyncio.run(main())
