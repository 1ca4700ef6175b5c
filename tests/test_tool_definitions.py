"""Tools from functions as people write them: docstrings that are only an ``Args:`` section,
attribute docstrings on nested types, generators, and methods."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from agentkit.agent import Agent
from agentkit.errors import ConfigurationError, ToolDefinitionError, ToolExecutionError
from agentkit.messages import ToolCall
from agentkit.testing import ScriptedModel
from agentkit.tools import tool

# --- docstrings that are only sections ------------------------------------------------------


def test_a_docstring_that_is_only_an_args_section_is_parsed() -> None:
    @tool
    def forecast(city: str, days: int = 1) -> str:
        """Args:
        city: the city, e.g. "Paris"
        days: how many days ahead
        """
        return city

    @tool
    def forecast_indented(city: str, days: int = 1) -> str:
        """Args:
            city: the city, e.g. "Paris"
            days: how many days ahead

        Returns:
            the forecast
        """
        return city

    for t in (forecast, forecast_indented):
        props = t.parameters["properties"]
        assert props["city"]["description"] == 'the city, e.g. "Paris"'
        assert props["days"]["description"] == "how many days ahead"
        assert "Args" not in t.description and "city" not in t.description


# --- attribute docstrings on nested types -----------------------------------------------------


class Address(TypedDict):
    street: str
    """The street and number, e.g. "10 Downing St"."""
    city: str


@dataclass
class Window:
    start: str
    """First day, YYYY-MM-DD."""
    end: str = ""
    """Last day, YYYY-MM-DD; empty for one day."""


class Base(BaseModel):
    id: str
    """The customer id, e.g. "C-12"."""


class Customer(Base):
    name: str
    """Full name."""
    age: int = Field(0, description="Age in years.")
    """Not used: Field(description=...) comes first."""
    home: Address
    nick: str = ""


def test_attribute_docstrings_reach_nested_property_descriptions() -> None:
    @tool
    def book(customer: Customer, window: Window, others: list[Customer] | None = None) -> str:
        """Book a visit."""
        return "ok"

    props = book.parameters["properties"]
    customer = props["customer"]["properties"]
    assert customer["id"]["description"] == 'The customer id, e.g. "C-12".'  # from a base class
    assert customer["name"]["description"] == "Full name."
    assert customer["age"]["description"] == "Age in years."
    assert "description" not in customer["nick"]
    street = customer["home"]["properties"]["street"]
    assert street["description"] == 'The street and number, e.g. "10 Downing St".'
    assert "description" not in customer["home"]["properties"]["city"]
    window = props["window"]["properties"]
    assert window["start"]["description"] == "First day, YYYY-MM-DD."
    assert window["end"]["description"] == "Last day, YYYY-MM-DD; empty for one day."
    nested = props["others"]["items"]["properties"]
    assert nested["name"]["description"] == "Full name."
    # validation is unchanged
    assert book.validate(
        {
            "customer": {"id": "C-1", "name": "Ann", "home": {"street": "x", "city": "y"}},
            "window": {"start": "2025-01-01"},
        }
    )["window"] == Window(start="2025-01-01")


# --- generators -----------------------------------------------------------------------------------


def numbers(n: int) -> Iterator[int]:
    """Count up.

    Args:
        n: how far
    """
    yield from range(n)


async def anumbers(n: int) -> AsyncIterator[int]:
    """Count up.

    Args:
        n: how far
    """
    for i in range(n):
        yield i


class Counter:
    def __call__(self, n: int) -> Iterator[int]:
        """Count up."""
        yield from range(n)


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (numbers, "a generator"),
        (anumbers, "an async generator"),
        (functools.partial(numbers), "a generator"),
        (Counter(), "a generator"),
    ],
    ids=["generator", "async-generator", "partial", "callable-object"],
)
def test_generator_functions_are_refused_at_definition(fn: Any, kind: str) -> None:
    with pytest.raises(ToolDefinitionError, match=f"is {kind} function") as info:
        tool(fn, name="numbers")
    assert "return list(items)" in str(info.value)


async def test_a_function_that_returns_a_generator_is_an_error_the_model_reads() -> None:
    @tool
    def lazy(n: int) -> Any:
        """Count up lazily.

        Args:
            n: how far
        """
        return (i for i in range(n))

    with pytest.raises(ToolExecutionError, match="collect its items and return a list"):
        await lazy.run({"n": 3})


# --- methods ----------------------------------------------------------------------------------


class Shop:
    label = "shop"

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = stock

    @tool
    def count(self, item: str) -> int:
        """Count an item in stock.

        Args:
            item: the item, e.g. "apple"
        """
        return self.stock.get(item, 0)

    @tool(name="count_later")
    async def acount(self, item: str) -> int:
        """Count an item in stock, asynchronously.

        Args:
            item: the item
        """
        return self.stock.get(item, 0)

    @tool
    @classmethod
    def describe(cls, loud: bool = False) -> str:
        """Say what this is.

        Args:
            loud: shout it
        """
        return cls.label.upper() if loud else cls.label

    @tool
    @staticmethod
    def double(n: int) -> int:
        """Double a number.

        Args:
            n: the number
        """
        return 2 * n


def test_methods_become_tools_without_self_or_cls() -> None:
    shop = Shop({"apple": 3})
    assert list(shop.count.parameters["properties"]) == ["item"]
    assert shop.count.parameters["properties"]["item"]["description"] == 'the item, e.g. "apple"'
    assert list(Shop.describe.parameters["properties"]) == ["loud"]
    assert list(Shop.double.parameters["properties"]) == ["n"]
    assert shop.count is shop.count  # bound once per instance
    assert shop.count("apple") == 3 and Shop.count(shop, "apple") == 3  # still callable
    assert Shop.describe(True) == "SHOP" and shop.double(4) == 8
    assert Shop.count.is_unbound_method and not shop.count.is_unbound_method


async def test_an_agent_runs_method_tools_on_their_instance() -> None:
    shop, other = Shop({"apple": 3}), Shop({"apple": 7})
    model = ScriptedModel(
        [
            [
                ToolCall(id="1", name="count", arguments={"item": "apple"}),
                ToolCall(id="2", name="count_later", arguments={"item": "apple"}),
                ToolCall(id="3", name="describe", arguments={"loud": True}),
                ToolCall(id="4", name="double", arguments={"n": 5}),
            ],
            "done",
        ]
    )
    agent = Agent(model, [shop.count, other.acount, shop.describe, shop.double])
    result = await agent.run("go")
    assert [m.content for m in result.messages if m.role == "tool"] == ["3", "7", "SHOP", "10"]


def test_a_method_tool_read_from_its_class_is_refused_by_the_agent() -> None:
    with pytest.raises(ConfigurationError, match=r"pass it from an instance.*instance\.count"):
        Agent(ScriptedModel([]), [Shop.count])


def test_a_method_the_decorator_cannot_bind_says_how_to_fix_it() -> None:
    def loose(self, item: str) -> int:  # type: ignore[no-untyped-def]
        return 0

    with pytest.raises(ToolDefinitionError, match="put @tool on the method in the class body"):
        tool(loose)
