"""Print the Workers AI tool definition agentkit generates for a small, realistic tool.

Runs offline: ``python examples/tool_definition.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from agentkit.tools import tool


@tool
def get_forecast(
    city: str,
    days: int = 1,
    unit: Literal["celsius", "fahrenheit"] = "celsius",
) -> dict[str, object]:
    """Get the weather forecast for a city.

    Args:
        city: The city name, e.g. "Paris".
        days: How many days ahead, from 1 to 7.
        unit: The temperature unit.
    """
    return {"city": city, "days": days, "unit": unit, "forecast": ["sunny"] * days}


def main() -> None:
    print(json.dumps(get_forecast.definition(), indent=2, ensure_ascii=False))
    # What the model sees after calling it (numbers sent as text are accepted).
    result = asyncio.run(get_forecast.run({"city": "Paris", "days": "2"}))
    print(result.content)


if __name__ == "__main__":
    main()
