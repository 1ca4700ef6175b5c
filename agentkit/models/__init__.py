"""Model backends: one :class:`Model` protocol, and the servers agentkit speaks to.

The backends are imported on first use, so ``import agentkit`` does not pay for the HTTP stack
until a backend is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Model

if TYPE_CHECKING:
    from ._ratelimit import RateLimit
    from .openai import OpenAICompatible
    from .workers_ai import WorkersAI

__all__ = ["Model", "OpenAICompatible", "RateLimit", "WorkersAI"]

_LAZY = {
    "RateLimit": "._ratelimit",
    "OpenAICompatible": ".openai",
    "WorkersAI": ".workers_ai",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
