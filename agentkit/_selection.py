"""Which tools the model is offered on each request (``Agent(max_tools_per_request=k)``).

A small model chooses worse the more tools it sees, and every definition costs prompt tokens on
every request. With a limit, each step offers the ``k`` tools that best fit the conversation:

- every tool is indexed once (name, description, parameter names and descriptions) with the BM25
  index of :mod:`agentkit.patterns.retrieval`, imported on first use;
- each step ranks them against the latest user message and, at half weight, the recent
  transcript (the last few messages: what the model said, which tools ran, what they returned);
- tools the conversation has already called stay offered, then the best ranked fill the rest;
  when fewer than ``k`` match any word, the first tools in the agent's order fill the gaps;
- the offered tools keep the agent's order, so the same choice gives the same request bytes;
- within a run, the tools offered on the previous request stay offered (``keep``): the tool
  definitions at the start of each request do not change from step to step, which keeps the
  provider's prompt cache valid for the run.

Without a limit every tool is offered; above :data:`MANY_TOOLS` tools a warning is logged once
per agent, pointing here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .messages import Message
    from .tools import Tool

__all__ = ["MANY_TOOLS", "ToolSelector"]

logger = logging.getLogger("agentkit.agent")

#: Offering more tools than this on every request, without a limit, logs a warning (once).
MANY_TOOLS = 20
#: How many of the last messages count as "the recent transcript".
RECENT_MESSAGES = 6
_RECENT_WEIGHT = 0.5
_MAX_CHARS = 2_000  # of one message, for ranking


class ToolSelector:
    """Chooses the tools for one request; one per agent, shared by its runs (read-only state)."""

    __slots__ = ("_chosen", "_index", "_position", "_warned", "limit", "tools")

    def __init__(self, tools: Sequence[Tool], limit: int | None) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigurationError(
                f"max_tools_per_request must be None (offer every tool) or at least 1, got {limit!r}"
            )
        self.tools = tuple(tools)
        self.limit = limit
        self._position = {t.name: i for i, t in enumerate(self.tools)}
        self._index: Any = None
        self._chosen: dict[frozenset[int], tuple[Tool, ...]] = {}
        self._warned = False

    def select(self, messages: Sequence[Message], keep: Sequence[Tool] = ()) -> tuple[Tool, ...]:
        """The tools to offer for the next request, given the transcript so far.

        ``keep``: the tools the run offered on its previous request. They stay offered (after
        any tool the conversation called), so the request's tool definitions, which come first,
        stay byte-identical from step to step and the provider's prompt cache keeps its prefix.
        """
        limit = self.limit
        if limit is None or len(self.tools) <= limit:
            if limit is None and len(self.tools) > MANY_TOOLS and not self._warned:
                self._warned = True
                logger.warning(
                    "this agent offers %d tools on every request; small models choose badly among "
                    "more than %d and each definition costs prompt tokens: pass "
                    "Agent(..., max_tools_per_request=8) to offer only the ones that fit",
                    len(self.tools),
                    MANY_TOOLS,
                )
            return self.tools
        chosen: list[int] = []
        for name in _called(messages):
            position = self._position.get(name)
            if position is not None and position not in chosen:
                chosen.append(position)
        for tool in keep:
            if len(chosen) >= limit:
                break
            position = self._position.get(tool.name)
            if position is not None and position not in chosen:
                chosen.append(position)
        if len(chosen) < limit:
            for position in self._ranked(messages):
                if position not in chosen:
                    chosen.append(position)
                    if len(chosen) >= limit:
                        break
        for position in range(len(self.tools)):  # nothing matched: the agent's first tools
            if len(chosen) >= limit:
                break
            if position not in chosen:
                chosen.append(position)
        key = frozenset(chosen)
        offered = self._chosen.get(key)
        if offered is None:
            offered = tuple(self.tools[i] for i in sorted(key))
            if len(self._chosen) < 256:
                self._chosen[key] = offered  # the same tuple each time: cached request bytes
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "offering %d of %d tools: %s",
                len(offered),
                len(self.tools),
                ", ".join(t.name for t in offered),
            )
        return offered

    def _ranked(self, messages: Sequence[Message]) -> list[int]:
        """Tool positions, best match first; tools matching no word are left out."""
        index = self._index
        if index is None:
            index = self._index = _build_index(self.tools)
        latest, recent = _queries(messages)
        scores: dict[int, float] = {}
        everything = len(self.tools)
        for text, weight in ((latest, 1.0), (recent, _RECENT_WEIGHT)):
            if not text:
                continue
            for passage in index.search(text, k=everything):
                position = int(passage.id)
                scores[position] = scores.get(position, 0.0) + weight * passage.score
        return sorted(scores, key=lambda p: (-scores[p], p))


def _build_index(tools: Sequence[Tool]) -> Any:
    from ._schema import humanize
    from .patterns.retrieval import BM25Index, Passage

    passages = []
    for position, tool in enumerate(tools):
        words = [humanize(tool.name), tool.description]
        for name, prop in tool.parameters.get("properties", {}).items():
            words.append(humanize(name))
            description = prop.get("description") if isinstance(prop, dict) else None
            if isinstance(description, str):
                words.append(description)
        passages.append(Passage(id=str(position), text="\n".join(words), source=tool.name))
    return BM25Index(passages)


def _queries(messages: Sequence[Message]) -> tuple[str, str]:
    """The latest user message, and the other recent messages (text, calls, results)."""
    latest_at = -1
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            latest_at = i
            break
    latest = messages[latest_at].content[:_MAX_CHARS] if latest_at >= 0 else ""
    parts: list[str] = []
    for i in range(max(0, len(messages) - RECENT_MESSAGES), len(messages)):
        message = messages[i]
        if i == latest_at or message.role == "system":
            continue
        if message.content:
            parts.append(message.content[:_MAX_CHARS])
        for call in message.tool_calls:
            parts.append(call.name.replace("_", " "))
    return latest, "\n".join(parts)


def _called(messages: Sequence[Message]) -> list[str]:
    """Names of the tools called in the transcript, most recent first."""
    names: list[str] = []
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.name not in names:
                names.append(call.name)
    return names
