"""A tool whose argument is a pydantic model: the model fills in a whole object.

Runs offline on a scripted model; set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN to run it
on Workers AI.
"""

import os

from pydantic import BaseModel, Field

from agentkit.agent import Agent
from agentkit.messages import ToolCall
from agentkit.models import Model
from agentkit.testing import ScriptedModel
from agentkit.tools import tool


class Order(BaseModel):
    item: str = Field(description="what to order")
    quantity: int = Field(ge=1, description="how many")
    express: bool = Field(default=False, description="ship by express delivery")


@tool
def place_order(order: Order) -> str:
    """Place an order in the shop.

    Args:
        order: the order to place
    """
    days = 1 if order.express else 5
    return f"ordered {order.quantity} x {order.item}, arriving in {days} day(s)"


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()
    return ScriptedModel(
        [
            # Small models sometimes send numbers as text: "3" is accepted for an int.
            ToolCall(
                name="place_order",
                arguments={"order": {"item": "notebook", "quantity": "3", "express": True}},
            ),
            "Done: 3 notebooks are on their way and arrive tomorrow.",
        ]
    )


agent = Agent(make_model(), [place_order])

if __name__ == "__main__":
    result = agent.run_sync("Order three notebooks, express please.")
    for message in result.messages:
        if message.role == "tool":
            print(f"tool said: {message.content}")
    print(result.output)
