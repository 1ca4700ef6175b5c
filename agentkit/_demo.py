"""The agent behind ``agentkit demo``: unit conversion and a safe calculator, in a few steps.

Offline, a scripted model plays the model's part, but every number in its replies comes from
the real tools' real results, read back from the transcript.
"""

from __future__ import annotations

import ast
import math
import operator
import os
from collections.abc import Callable
from typing import Any

from .agent import Agent
from .messages import Message, ModelResponse, ToolCall
from .models.base import Model
from .models.scripted import FunctionModel
from .tools import Tool, tool

__all__ = ["DEMO_PROMPT", "build_demo_agent", "calculate", "convert_units", "has_credentials"]

DEMO_PROMPT = (
    "My recipe needs 2.5 lb of flour and I have 800 g. How many more grams of flour do I need?"
)

# Factors to a base unit per kind: metre, gram, litre.
_UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1000.0),
    "m": ("length", 1.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "mi": ("length", 1609.344),
    "yd": ("length", 0.9144),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "kg": ("mass", 1000.0),
    "g": ("mass", 1.0),
    "mg": ("mass", 0.001),
    "lb": ("mass", 453.59237),
    "oz": ("mass", 28.349523125),
    "l": ("volume", 1.0),
    "ml": ("volume", 0.001),
    "gal": ("volume", 3.785411784),
    "cup": ("volume", 0.2365882365),
}
_ALIASES = {
    "kilometer": "km", "kilometre": "km", "meter": "m", "metre": "m", "centimeter": "cm",
    "millimeter": "mm", "mile": "mi", "yard": "yd", "foot": "ft", "feet": "ft", "inch": "in",
    "kilogram": "kg", "gram": "g", "milligram": "mg", "pound": "lb", "lbs": "lb", "ounce": "oz",
    "liter": "l", "litre": "l", "milliliter": "ml", "gallon": "gal", "celsius": "c",
    "fahrenheit": "f", "kelvin": "k",
}  # fmt: skip
_TEMPERATURES = {"c", "f", "k"}


def _unit(name: str) -> str:
    key = name.strip().lower().removeprefix("°")
    key = _ALIASES.get(key, _ALIASES.get(key.removesuffix("s"), key))
    if key not in _UNITS and key not in _TEMPERATURES:
        known = ", ".join([*_UNITS, "C", "F", "K"])
        raise ValueError(f"unknown unit {name!r}; known units: {known}")
    return key


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert an amount between units of length, mass, volume or temperature.

    Args:
        value: the amount to convert
        from_unit: the unit of the amount, e.g. lb, kg, g, mi, km, ft, l, cup, C, F
        to_unit: the unit to convert to
    """
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TEMPERATURES or target in _TEMPERATURES:
        if not (source in _TEMPERATURES and target in _TEMPERATURES):
            raise ValueError(f"cannot convert {from_unit} to {to_unit}: not both temperatures")
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[source]
        result = {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[target]
        return round(result, 4)
    (kind_from, factor_from), (kind_to, factor_to) = _UNITS[source], _UNITS[target]
    if kind_from != kind_to:
        raise ValueError(f"cannot convert {kind_from} ({from_unit}) to {kind_to} ({to_unit})")
    return round(value * factor_from / factor_to, 4)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max,
}  # fmt: skip


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("use numbers, not True/False")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 100 or abs(left) > 1e6):
            raise ValueError("exponent too large: keep powers small (exponent at most 100)")
        return _BINARY[type(node.op)](left, right)  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args))  # type: ignore[no-any-return]
    raise ValueError(
        f"unsupported expression part {ast.unparse(node)!r}; use numbers, + - * / // % **, "
        f"parentheses and {', '.join(_FUNCTIONS)}"
    )


@tool
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression exactly, e.g. "(1133.98 - 800) * 2".

    Args:
        expression: numbers with + - * / // % ** and parentheses; sqrt, abs, round, min, max
    """
    if len(expression) > 500:
        raise ValueError("expression too long (at most 500 characters)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a valid expression: {exc.msg}") from None
    try:
        result = _evaluate(tree)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    return round(float(result), 6)


DEMO_TOOLS: list[Tool] = [convert_units, calculate]

SYSTEM_PROMPT = (
    "You are a careful kitchen assistant. Use convert_units for every unit conversion and "
    "calculate for every sum; never do arithmetic in your head. Answer in one or two sentences."
)


def has_credentials() -> bool:
    """Whether the Cloudflare account variables are set."""
    return bool(os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"))


def _tool_results(messages: list[Message]) -> dict[str, str]:
    """The latest result of each tool since the last user message."""
    found: dict[str, str] = {}
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "tool" and message.name and message.name not in found:
            found[message.name] = message.content
    return found


def _scripted_reply(messages: list[Message], tools: list[Tool]) -> ModelResponse | ToolCall:
    """What a good model does with the demo prompt, using the numbers the tools returned."""
    results = _tool_results(messages)
    if "convert_units" not in results:
        return ToolCall(
            name="convert_units", arguments={"value": 2.5, "from_unit": "lb", "to_unit": "g"}
        )
    needed = results["convert_units"]
    if "calculate" not in results:
        return ToolCall(name="calculate", arguments={"expression": f"{needed} - 800"})
    missing = float(results["calculate"])
    return ModelResponse(
        text=f"2.5 lb is {needed} g, so with 800 g you need about {missing:.0f} g more flour.",
        finish_reason="stop",
    )


def build_demo_agent(model: Model | None = None) -> Agent:
    """The demo agent, on ``model``: by default Workers AI when the variables are set, else
    a scripted model."""
    if model is None:
        if has_credentials():
            from .models import WorkersAI

            model = WorkersAI()
        else:
            model = FunctionModel(_scripted_reply, model_name="scripted-demo")
    return Agent(model, DEMO_TOOLS, system_prompt=SYSTEM_PROMPT, max_steps=6)
