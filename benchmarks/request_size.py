"""Request body size for the same 10 tools: agentkit next to pydantic-ai and openai-agents.

Each framework sends one request with the same prompt and the same 10 tools to an in-memory
transport (``httpx.MockTransport``) that answers with a short text; the body it sent is measured.
agentkit sends the Workers AI format; the peers send the OpenAI chat-completions format through
their own clients. Smaller bodies cost less on Workers AI and leave a 3B model more context.

Run by hand::

    pip install -e ".[bench]"
    python benchmarks/request_size.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

import httpx

PROMPT = "What's the weather in Paris?"
ANSWER = "Sunny."


# --- the same 10 tools, as plain documented functions --------------------------------------------


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather for a city.

    Args:
        city: The city name, e.g. "Paris".
        unit: The temperature unit.
    """
    return "sunny"


def search_docs(query: str, k: int = 5) -> list[str]:
    """Search the documentation and return the best passages.

    Args:
        query: What to look for.
        k: How many passages to return.
    """
    return []


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a quantity from one unit to another.

    Args:
        value: The quantity to convert.
        from_unit: The unit of the value, e.g. "km".
        to_unit: The unit to convert to, e.g. "mi".
    """
    return value


def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression.

    Args:
        expression: The expression, e.g. "2 * (3 + 4)".
    """
    return 0.0


def get_time(timezone: str = "UTC") -> str:
    """Get the current time in a time zone.

    Args:
        timezone: An IANA time zone name, e.g. "Europe/Paris".
    """
    return ""


def send_email(to: str, subject: str, body: str) -> str:
    """Send an email.

    Args:
        to: The recipient's address.
        subject: The subject line.
        body: The message text.
    """
    return "sent"


def create_event(
    title: str, day: date, duration_minutes: int = 30, attendees: list[str] | None = None
) -> str:
    """Create a calendar event.

    Args:
        title: The event's title.
        day: The day of the event.
        duration_minutes: How long it lasts.
        attendees: Email addresses of the people invited.
    """
    return "created"


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id.

    Args:
        order_id: The order id, e.g. "A-1042".
    """
    return {}


def translate(text: str, target_language: Literal["en", "fr", "de", "es"]) -> str:
    """Translate text into another language.

    Args:
        text: The text to translate.
        target_language: The language to translate into.
    """
    return text


def summarize_url(url: str, max_words: int = 100) -> str:
    """Summarize the page at a URL.

    Args:
        url: The page's address.
        max_words: The longest summary wanted, in words.
    """
    return ""


TOOLS: list[Callable[..., Any]] = [
    get_weather,
    search_docs,
    convert_units,
    calculate,
    get_time,
    send_email,
    create_event,
    lookup_order,
    translate,
    summarize_url,
]


# --- one capturing transport per wire format ----------------------------------------------------


class Capture:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.bodies: list[bytes] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        return httpx.Response(200, json=self.reply)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


def _openai_reply() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "llama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _workers_reply() -> dict[str, Any]:
    return {
        "result": {"response": ANSWER, "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        "success": True,
        "errors": [],
        "messages": [],
    }


async def agentkit_body() -> bytes:
    from agentkit import Agent, tool
    from agentkit.models import WorkersAI

    capture = Capture(_workers_reply())
    async with capture.client() as http:
        model = WorkersAI(account_id="acct", api_token="token", http_client=http)
        agent = Agent(model, tools=[tool(f) for f in TOOLS])
        await agent.run(PROMPT)
    return capture.bodies[0]


async def pydantic_ai_body() -> bytes:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    capture = Capture(_openai_reply())
    async with capture.client() as http:
        provider = OpenAIProvider(base_url="http://local/v1", api_key="token", http_client=http)
        agent = Agent(OpenAIChatModel("llama", provider=provider), tools=TOOLS)
        await agent.run(PROMPT)
    return capture.bodies[0]


async def openai_agents_body() -> bytes:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    capture = Capture(_openai_reply())
    async with capture.client() as http:
        client = AsyncOpenAI(base_url="http://local/v1", api_key="token", http_client=http)
        agent = Agent(
            name="bench",
            model=OpenAIChatCompletionsModel("llama", openai_client=client),
            tools=[function_tool(f) for f in TOOLS],
        )
        await Runner.run(agent, PROMPT)
    return capture.bodies[0]


def _tools_bytes(body: bytes) -> int:
    tools = json.loads(body).get("tools", [])
    return len(json.dumps(tools, separators=(",", ":")).encode())


async def main() -> None:
    rows = []
    for name, make in [
        ("agentkit", agentkit_body),
        ("pydantic-ai", pydantic_ai_body),
        ("openai-agents", openai_agents_body),
    ]:
        try:
            body = await make()
        except ImportError as exc:
            print(f"skipping {name}: not installed ({exc.name})", file=sys.stderr)
            continue
        rows.append((name, len(body), _tools_bytes(body)))
    print("| framework | request body, bytes | its `tools`, compact JSON bytes |")
    print("|---|---:|---:|")
    for name, size, tools in rows:
        print(f"| {name} | {size} | {tools} |")
    if "-v" in sys.argv:
        for name, make in [("agentkit", agentkit_body)]:
            print(f"\n{name} body:\n{(await make()).decode()}")


if __name__ == "__main__":
    asyncio.run(main())
