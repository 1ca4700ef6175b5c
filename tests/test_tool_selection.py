"""Agent(max_tools_per_request=k): the tools offered each step, and the warning without it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mcp_servers import TOPICS

from agentkit import Agent, Message, Tool, ToolCall
from agentkit._selection import MANY_TOOLS
from agentkit.errors import ConfigurationError
from agentkit.testing import ScriptedModel


def topic_tool(topic: str) -> Tool:
    def handle(query: str) -> str:
        return f"{topic}: {query}"

    return Tool.from_function(
        handle, name=topic.replace(" ", "_"), description=f"Look up or manage {topic} for the user."
    )


TOOLS = [topic_tool(topic) for topic in TOPICS]
ORDER = {t.name: i for i, t in enumerate(TOOLS)}


def offered(model: ScriptedModel) -> list[list[str]]:
    return [[t.name for t in request.tools] for request in model.requests]


async def test_each_request_offers_the_k_tools_that_fit_in_the_agents_order() -> None:
    model = ScriptedModel([ToolCall(name="send_email", arguments={"query": "to Ana"}), "Sent."])
    agent = Agent(model, TOOLS, max_tools_per_request=8)
    await agent.run("Send an email to Ana about the invoice")
    first, second = offered(model)
    assert len(first) == 8 and {"send_email", "create_invoice", "pay_invoice"} <= set(first)
    assert first == sorted(first, key=ORDER.__getitem__)  # stable order: stable request bytes
    assert second == first


async def test_called_tools_stay_offered_and_recent_messages_count() -> None:
    history = [
        Message(role="user", content="Is my flight on time?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="flight_status", arguments={"query": "LH1"})],
        ),
        Message(role="tool", content="on time", tool_call_id="c1", name="flight_status"),
        Message(
            role="assistant", content="It is on time. Shall I book a taxi ride to the airport?"
        ),
    ]
    model = ScriptedModel(["Booked."])
    agent = Agent(model, TOOLS, max_tools_per_request=4)
    await agent.run("yes please", message_history=history)
    (tools,) = offered(model)
    assert "flight_status" in tools  # called earlier in the conversation
    assert "taxi_ride" in tools  # from the recent transcript: "yes please" says nothing
    assert len(tools) == 4


async def test_nothing_matches_then_the_first_tools_are_offered() -> None:
    model = ScriptedModel(["Hello!"])
    await Agent(model, TOOLS, max_tools_per_request=3).run("hi")
    assert offered(model) == [[t.name for t in TOOLS[:3]]]


async def test_no_selection_when_the_agent_has_few_tools() -> None:
    model = ScriptedModel(["ok"])
    agent = Agent(model, TOOLS[:5], max_tools_per_request=8)
    await agent.run("weather please")
    assert model.requests[0].tools == list(agent.tools)


def test_the_limit_is_checked() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigurationError, match="max_tools_per_request"):
            Agent(ScriptedModel([]), TOOLS, max_tools_per_request=bad)  # type: ignore[arg-type]


async def test_many_tools_without_a_limit_warn_once_per_agent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    many = TOOLS[: MANY_TOOLS + 1]
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        model = ScriptedModel(["a", "b"])
        agent: Agent[Any] = Agent(model, many)
        await agent.run("one")
        await agent.run("two")
        assert len(warnings()) == 1
        assert f"offers {MANY_TOOLS + 1} tools" in warnings()[0]
        assert "max_tools_per_request" in warnings()[0]
        await Agent(ScriptedModel(["a"]), TOOLS[:MANY_TOOLS]).run("few enough")
        await Agent(ScriptedModel(["a"]), many, max_tools_per_request=8).run("limited")
        assert len(warnings()) == 1
