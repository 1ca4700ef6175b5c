"""Agents as tools: a coordinator hands sub-tasks to two specialist agents.

The unit converter and the calculator are agents with their own tools and instructions; the
coordinator sees each as one tool taking a plain-language ``request``. Their usage is added
to the coordinator's, so the totals printed at the end are the cost of the whole job.

Offline by default, with stand-in models that reply from the transcript (every number comes
from the real tools); on Workers AI when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are set.

    python examples/agents_as_tools.py
    python examples/agents_as_tools.py "How many litres is 3 gallons, split in 4 bottles?"  # Workers AI
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from typing import Any, Literal

from agentkit import Message, ModelResponse, ToolCall
from agentkit.agent import Agent, RunFinished, ToolCallFinished, ToolCallStarted
from agentkit.models import Model, WorkersAI
from agentkit.testing import FunctionModel
from agentkit.tools import tool

QUESTION = (
    "A bread recipe for 4 people needs 1.5 lb of flour. "
    "How many grams of flour do I need for 6 people?"
)

# --- the specialists' tools -------------------------------------------------------------------

# Factors to grams, metres and litres.
UNITS = {
    "g": ("mass", 1.0), "kg": ("mass", 1000.0), "lb": ("mass", 453.59237),
    "oz": ("mass", 28.349523125), "m": ("length", 1.0), "km": ("length", 1000.0),
    "mi": ("length", 1609.344), "ft": ("length", 0.3048), "in": ("length", 0.0254),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784),
}  # fmt: skip


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert an amount between units of mass, length or volume.

    Args:
        value: the amount to convert
        from_unit: its unit: g, kg, lb, oz, m, km, mi, ft, in, l, ml or gal
        to_unit: the unit to convert to (same list)
    """
    source, target = UNITS.get(from_unit.lower()), UNITS.get(to_unit.lower())
    if source is None or target is None:
        raise ValueError(f"unknown unit; use one of {', '.join(UNITS)}")
    if source[0] != target[0]:
        raise ValueError(f"cannot convert {source[0]} ({from_unit}) to {target[0]} ({to_unit})")
    return round(value * source[1] / target[1], 3)


@tool
def calculate(a: float, operator: Literal["+", "-", "*", "/"], b: float) -> float:
    """Compute a op b exactly.

    Args:
        a: the first number
        operator: one of + - * /
        b: the second number
    """
    if operator == "/" and b == 0:
        raise ValueError("division by zero")
    results = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}
    return round(results[operator], 6)


# --- offline stand-ins for the model ----------------------------------------------------------

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _since_last_user(messages: list[Message]) -> tuple[str, dict[str, Message]]:
    """The last user message, and the latest tool message of each tool after it."""
    results: dict[str, Message] = {}
    for message in reversed(messages):
        if message.role == "user":
            return message.content, results
        if message.role == "tool" and message.name:
            results.setdefault(message.name, message)
    return "", results


def _last_call(messages: list[Message]) -> ToolCall:
    return next(m for m in reversed(messages) if m.tool_calls).tool_calls[-1]


def offline_converter(messages: list[Message], tools: list[Any]) -> ToolCall | str:
    request, results = _since_last_user(messages)
    if "convert_units" not in results:
        found = re.search(r"(-?[\d.]+)\s*([a-zA-Z]+)\s+(?:to|in|into)\s+([a-zA-Z]+)", request)
        if found is None:
            return "Tell me the amount, its unit and the unit you want, e.g. '2 lb to g'."
        value, unit, target = found.groups()
        target = {"grams": "g", "kilograms": "kg", "litres": "l", "liters": "l"}.get(target, target)
        return ToolCall(
            name="convert_units",
            arguments={"value": float(value), "from_unit": unit, "to_unit": target},
        )
    args = _last_call(messages).arguments
    return f"{args['value']} {args['from_unit']} is {results['convert_units'].content} {args['to_unit']}."


def offline_calculator(messages: list[Message], tools: list[Any]) -> ToolCall | str:
    request, results = _since_last_user(messages)
    if "calculate" not in results:
        found = re.search(r"(-?[\d.]+)\s*([-+*/])\s*(-?[\d.]+)", request)
        if found is None:
            return "Give me one operation, e.g. '680.4 * 1.5'."
        a, operator, b = found.groups()
        return ToolCall(
            name="calculate", arguments={"a": float(a), "operator": operator, "b": float(b)}
        )
    args = _last_call(messages).arguments
    return f"{args['a']} {args['operator']} {args['b']} = {results['calculate'].content}"


def offline_coordinator(messages: list[Message], tools: list[Any]) -> ToolCall | ModelResponse:
    _, results = _since_last_user(messages)
    if "unit_converter" not in results:
        return ToolCall(name="unit_converter", arguments={"request": "Convert 1.5 lb to grams."})
    grams = NUMBER.findall(results["unit_converter"].content)[-1]
    if "calculator" not in results:
        return ToolCall(name="calculator", arguments={"request": f"What is {grams} * 1.5?"})
    total = float(NUMBER.findall(results["calculator"].content)[-1])
    return ModelResponse(
        text=f"1.5 lb is {grams} g, so for 6 people (1.5 times the recipe) you need "
        f"about {total:.0f} g of flour."
    )


# --- the agents -------------------------------------------------------------------------------


def build(model: Model | None = None) -> Agent:
    """The coordinator and its specialists, all on ``model`` (offline stand-ins if None)."""

    def pick(offline: Any, name: str) -> Model:
        return model if model is not None else FunctionModel(offline, model_name=name)

    converter = Agent(
        pick(offline_converter, "offline-converter"),
        [convert_units],
        name="unit_converter",
        description="Converts an amount between units (mass, length, volume). "
        "Send the amount, its unit and the unit wanted, e.g. 'Convert 2 lb to g'.",
        system_prompt="Convert amounts with the convert_units tool, then state the result "
        "in one short sentence with its unit.",
        max_steps=4,
    )
    calculator = Agent(
        pick(offline_calculator, "offline-calculator"),
        [calculate],
        name="calculator",
        description="Does arithmetic exactly. Send one operation with its numbers, "
        "e.g. 'What is 680.4 * 1.5?'.",
        system_prompt="Compute with the calculate tool, never in your head, then reply with "
        "the result.",
        max_steps=4,
    )
    return Agent(
        pick(offline_coordinator, "offline-coordinator"),
        [converter.as_tool(), calculator.as_tool()],
        system_prompt="You answer practical questions by delegating: ask unit_converter for "
        "every unit conversion and calculator for every computation; never compute yourself. "
        "Then answer in one or two sentences.",
        max_steps=6,
    )


def make_model() -> Model | None:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        return WorkersAI(rate_limit=300)
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    args = parser.parse_args()

    model = make_model()
    coordinator = build(model)
    question = args.question if model is not None else QUESTION
    print(f"model: {model.model_name if model else 'offline stand-ins'}")
    print(f"question: {question}")
    try:
        async for event in coordinator.iter(question):
            if isinstance(event, ToolCallStarted):
                print(f"→ {event.call.name}: {event.call.arguments.get('request', '')}")
            elif isinstance(event, ToolCallFinished):
                mark = "✗" if event.result.is_error else "←"
                print(f"  {mark} {event.result.content}")
            elif isinstance(event, RunFinished):
                result = event.result
                usage = result.usage
                print(f"answer: {result.output}")
                print(
                    f"{usage.requests} model requests in all ({result.steps} by the "
                    f"coordinator), {usage.tool_calls} tool calls, {usage.total_tokens} tokens"
                )
    finally:
        if isinstance(model, WorkersAI):
            await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
