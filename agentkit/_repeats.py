"""Calls a run has already answered: a model that repeats itself gets the earlier result back.

Small models often call the same tool with the same arguments turn after turn until
``max_steps``. Within one run, a call identical to one already answered (same tool, same
arguments, dict keys in any order) does not run again: it is
answered with the earlier result and a note that the model already has it. A call whose
earlier result was an error is not remembered (it runs again, within the tool's retry budget).
After ``limit`` such repeats, the next one ends the run (see ``Agent(max_repeats=...,
on_repeat=...)``): one last request for the final answer, or an error.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .messages import ToolCall, ToolResult

__all__ = ["RepeatGuard"]

_NOTE = (
    "You already called {name} with these same arguments, and this is its result again:\n"
    "{content}\n"
    "[Do not repeat this call: use the result above, call something else, or give your final "
    "answer.]"
)


def _canonical(value: Any) -> Any:
    """Dicts (at any depth) with their keys sorted; everything else as it is."""
    if isinstance(value, dict):
        return sorted((str(k), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _key(call: ToolCall) -> Hashable:
    """What identical calls share. Plain values (the usual case) cost a frozenset; nested ones
    a canonical repr, which keeps 1, 1.0 and True apart as JSON does."""
    args = call.arguments
    try:
        return call.name, frozenset(args.items())
    except TypeError:  # lists or dicts among the values
        return call.name, repr(_canonical(args))


def _same_types(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # 1 == 1.0 == True in a frozenset; a repeat must match in type too.
    return all(type(v) is type(a.get(k)) for k, v in b.items())


class RepeatGuard:
    """The answered calls of one run, and how many repeats it has had."""

    __slots__ = ("_answered", "limit", "repeats", "tools")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.repeats = 0
        self.tools: list[str] | None = None  # the tool of each repeat, in order
        # Made on first use: a run that calls no tool keeps one object alive, not three.
        self._answered: dict[Hashable, tuple[dict[str, Any], str]] | None = None

    def check(self, call: ToolCall) -> tuple[Hashable, ToolResult | None]:
        """``(key, earlier result with the note)`` if ``call`` repeats an answered one, else
        ``(key, None)``; pass the key to :meth:`remember` with the call's result."""
        key = _key(call)
        found = self._answered.get(key) if self._answered else None
        if found is None or not _same_types(found[0], call.arguments):
            return key, None
        self.repeats += 1
        if self.tools is None:
            self.tools = []
        self.tools.append(call.name)
        return key, ToolResult(
            content=_NOTE.format(name=call.name, content=found[1]),
            value=None,
            is_error=False,
            tool_call_id=None,
            name=None,
        )

    def remember(self, key: Hashable, call: ToolCall, result: ToolResult) -> None:
        """Keep a successful result so an identical later call can be answered from it."""
        if result.is_error:
            return
        if self._answered is None:
            self._answered = {}
        self._answered.setdefault(key, (call.arguments, result.content))

    @property
    def exceeded(self) -> bool:
        """More repeats than ``limit``: the run should end."""
        return self.repeats > self.limit

    def describe(self) -> str:
        names = ", ".join(dict.fromkeys(self.tools or ()))
        return (
            f"the model repeated calls it already had the results of {self.repeats} times "
            f"(max_repeats={self.limit}; tools: {names})"
        )
