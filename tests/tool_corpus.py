"""A corpus of tool functions covering docstring styles and parameter types.

Every entry is a :class:`Case`: a function and arguments a model could send for it. The module
uses postponed annotations on purpose, so every annotation here is resolved from a string.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from agentkit.tools import ToolContext


@dataclasses.dataclass
class Case:
    fn: Callable[..., Any]
    args: dict[str, Any]
    #: the arguments also satisfy ``parameters`` as plain JSON Schema (false for mixed unions,
    #: whose one top-level ``type`` cannot describe every variant)
    schema_accepts_args: bool = True


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str = Field(description="City name.")
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$")] | None = None


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    address: Address | None = None


class TreeNode(BaseModel):
    label: str
    children: list[TreeNode] = []


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Range(TypedDict):
    start: int
    end: int


def google_style(city: str, days: int = 1) -> str:
    """Get the weather forecast for a city.

    Args:
        city: The city name, e.g. "Paris".
        days: How many days ahead, 1 to 7.
    """
    return f"{city}:{days}"


def numpy_style(query: str, limit: int = 5) -> list[str]:
    """Search the catalogue.

    Parameters
    ----------
    query : str
        Words to look for.
    limit : int
        The most results to return.
    """
    return [query] * limit


def rest_style(path: str, recursive: bool = False) -> str:
    """List the files in a folder.

    :param path: The folder to list.
    :param recursive: Include subfolders.
    :returns: One name per line.
    """
    return f"{path}:{recursive}"


def epydoc_style(amount: float, currency: str) -> str:
    """Convert an amount to euros.

    @param amount: The amount to convert.
    @param currency: The three-letter code of its currency.
    @return: The amount in euros.
    """
    return f"{amount} {currency}"


def no_docstring(item_id: int, verbose: bool = False) -> dict[str, Any]:
    return {"item_id": item_id, "verbose": verbose}


def annotated_field(
    text: Annotated[str, Field(description="The text to shorten.", min_length=1)],
    max_words: Annotated[int, Field(description="Word budget.", ge=1, le=500)] = 50,
) -> str:
    """Shorten a text."""
    return " ".join(text.split()[:max_words])


def annotated_string(word: Annotated[str, "The word to define."]) -> str:
    """Define a word."""
    return word


def field_as_default(count: int = Field(3, ge=1, description="How many.")) -> int:
    """Count up."""
    return count


def optional_params(name: str, nickname: str | None = None, age: Optional[int] = None) -> str:  # noqa: UP045
    """Greet someone.

    Args:
        name: Their name.
        nickname: What friends call them.
        age: Their age in years.
    """
    return f"{name}/{nickname}/{age}"


def optional_no_default(note: str | None) -> str:
    """Store a note."""
    return repr(note)


def number_union(value: int | float) -> float:
    """Double a number."""
    return value * 2


def mixed_union(key: int | str) -> str:
    """Look up a key."""
    return repr(key)


def old_style_union(key: Union[int, str, None] = None) -> str:  # noqa: UP007
    """Look up an optional key."""
    return repr(key)


def literal_param(unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Pick a unit."""
    return unit


def literal_numbers(level: Literal[1, 2, 3]) -> int:
    """Pick a level."""
    return level


def enum_param(color: Color, priority: Priority = Priority.LOW) -> str:
    """Paint with a color.

    Args:
        color: The paint color.
        priority: How urgent.
    """
    return f"{color.value}:{int(priority)}"


def list_param(numbers: list[int]) -> int:
    """Add numbers.

    Args:
        numbers: The numbers to add.
    """
    return sum(numbers)


def tuple_param(pair: tuple[int, str]) -> str:
    """Join a pair."""
    return f"{pair[0]}-{pair[1]}"


def set_param(tags: set[str]) -> list[str]:
    """Sort unique tags."""
    return sorted(tags)


def dict_param(scores: dict[str, float]) -> float:
    """Sum scores by name."""
    return sum(scores.values())


def nested_list(matrix: list[list[int]]) -> int:
    """Count the cells of a matrix."""
    return sum(len(row) for row in matrix)


def model_param(person: Person) -> str:
    """Register a person.

    Args:
        person: Who to register.
    """
    return f"{person.name}:{person.age}"


def recursive_model(tree: TreeNode) -> int:
    """Count the nodes of a tree."""

    def count(node: TreeNode) -> int:
        return 1 + sum(count(c) for c in node.children)

    return count(tree)


def dataclass_param(point: Point) -> float:
    """Distance from the origin, squared."""
    return point.x**2 + point.y**2


def typeddict_param(span: Range) -> int:
    """Length of a range."""
    return span["end"] - span["start"]


def datetime_params(when: datetime, day: date, at: time, every: timedelta) -> str:
    """Schedule a reminder.

    Args:
        when: When it was created.
        day: The day to remind.
        at: The time of day.
        every: How often to repeat.
    """
    return f"{when.isoformat()}|{day.isoformat()}|{at.isoformat()}|{every.total_seconds()}"


def uuid_path_decimal(order_id: uuid.UUID, file: Path, price: Decimal) -> str:
    """Attach a file to an order."""
    return f"{order_id}|{file.name}|{price}"


def constraints(
    username: Annotated[str, Field(min_length=3, max_length=20, pattern=r"^[a-z]+$")],
    score: Annotated[float, Field(ge=0, lt=10)] = 5.0,
    tags: Annotated[list[str], Field(max_length=3)] = [],  # noqa: B006
) -> str:
    """Save a score."""
    return f"{username}:{score}:{len(tags)}"


def var_args(*words: str) -> str:
    """Join words.

    Args:
        *words: The words to join.
    """
    return " ".join(words)


def var_kwargs(title: str, **labels: str) -> str:
    """Label a document.

    Args:
        title: The title of the document.
        **labels: Extra labels, by name.
    """
    return title + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def positional_only(a: int, b: int, /, scale: int = 1) -> int:
    """Multiply two numbers."""
    return a * b * scale


def with_context(ctx: ToolContext[dict[str, str]], key: str) -> str:
    """Read a setting.

    Args:
        key: The setting's name.
    """
    return (ctx.deps or {}).get(key, "?")


async def async_tool(url: str, retries: int = 0) -> dict[str, Any]:
    """Fetch a page (pretend).

    Args:
        url: The page address.
        retries: How many times to retry.
    """
    return {"url": url, "retries": retries}


def no_params() -> str:
    """Tell the time (fixed)."""
    return "12:00"


def property_named_title(title: str, description: str = "") -> str:
    """Create a note.

    Args:
        title: The note's title.
        description: The note's body.
    """
    return f"{title}:{description}"


def bool_and_float(enabled: bool, ratio: float = 0.5) -> str:
    """Configure a feature."""
    return f"{enabled}:{ratio}"


def any_param(payload: Any) -> str:
    """Store anything."""
    return repr(payload)


def private_param(query: str, _cache: dict[str, str] | None = None) -> str:
    """Search with an internal cache."""
    return query


CORPUS: list[Case] = [
    Case(google_style, {"city": "Paris", "days": 2}),
    Case(numpy_style, {"query": "tea", "limit": 2}),
    Case(rest_style, {"path": "/tmp", "recursive": True}),
    Case(epydoc_style, {"amount": 12.5, "currency": "USD"}),
    Case(no_docstring, {"item_id": 7}),
    Case(annotated_field, {"text": "a b c d", "max_words": 2}),
    Case(annotated_string, {"word": "tool"}),
    Case(field_as_default, {"count": 4}),
    Case(optional_params, {"name": "Ada", "age": 36}),
    Case(optional_no_default, {"note": "hi"}),
    Case(number_union, {"value": 2.5}),
    Case(mixed_union, {"key": 3}, schema_accepts_args=False),
    Case(old_style_union, {"key": "k"}),
    Case(literal_param, {"unit": "fahrenheit"}),
    Case(literal_numbers, {"level": 2}),
    Case(enum_param, {"color": "green", "priority": 2}),
    Case(list_param, {"numbers": [1, 2, 3]}),
    Case(tuple_param, {"pair": [1, "a"]}),
    Case(set_param, {"tags": ["b", "a", "b"]}, schema_accepts_args=False),
    Case(dict_param, {"scores": {"a": 1.5, "b": 2}}),
    Case(nested_list, {"matrix": [[1, 2], [3]]}),
    Case(
        model_param,
        {"person": {"name": "Ada", "age": 36, "address": {"street": "Main", "city": "X"}}},
    ),
    Case(recursive_model, {"tree": {"label": "a", "children": [{"label": "b"}]}}),
    Case(dataclass_param, {"point": {"x": 3, "y": 4}}),
    Case(typeddict_param, {"span": {"start": 2, "end": 5}}),
    Case(
        datetime_params,
        {"when": "2024-05-01T10:00:00", "day": "2024-05-02", "at": "09:30:00", "every": "P1D"},
    ),
    Case(
        uuid_path_decimal,
        {
            "order_id": "12345678-1234-5678-1234-567812345678",
            "file": "/tmp/a.txt",
            "price": "9.99",
        },
    ),
    Case(constraints, {"username": "ada", "score": 9.5, "tags": ["x"]}),
    Case(var_args, {"words": ["hello", "world"]}),
    Case(var_kwargs, {"title": "T", "labels": {"lang": "en"}}),
    Case(positional_only, {"a": 2, "b": 3, "scale": 2}),
    Case(with_context, {"key": "mode"}),
    Case(async_tool, {"url": "https://example.com"}),
    Case(no_params, {}),
    Case(property_named_title, {"title": "T", "description": "D"}),
    Case(bool_and_float, {"enabled": False, "ratio": 0.25}),
    Case(any_param, {"payload": "x"}),
    Case(private_param, {"query": "q"}),
]
