"""Holding back streamed text that may turn out to be a tool call written as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Holdback"]


class Holdback:
    """Holds back streamed text that may be a tool call written as text.

    If the answer starts like a call (``{``, ``[``, ``<``, a fence, or an offered tool's name
    followed by ``(``), its deltas are kept until the end: if calls are recovered they are not
    shown as an answer, otherwise the text is released in one delta.
    """

    __slots__ = ("_decided", "_names", "held")

    def __init__(self, tools: Sequence[Any]) -> None:
        self._names = [getattr(t, "name", "") for t in tools]
        self._decided = False
        self.held: list[str] = []

    def push(self, delta: str) -> str:
        if self._decided:
            if self.held:
                self.held.append(delta)
                return ""
            return delta
        self.held.append(delta)
        start = "".join(self.held).lstrip()
        if not start:
            return ""
        if start[0] in "{[<`":
            self._decided = True
            return ""
        for name in self._names:
            candidate = name + "("
            if start.startswith(candidate):
                self._decided = True
                return ""
            if candidate.startswith(start):
                return ""  # may still become a call: wait for more text
        self._decided = True
        return self.release()

    def release(self) -> str:
        text = "".join(self.held)
        self.held = []
        return text
