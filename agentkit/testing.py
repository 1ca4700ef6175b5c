"""What you need to test your agents offline: models that reply from a script or a function.

``ScriptedModel`` plays replies given in advance and records every request;
``FunctionModel`` computes each reply with your function. See ``docs/testing.md``.
"""

from __future__ import annotations

from .models.scripted import (
    FunctionModel,
    ScriptedModel,
    ScriptedRequest,
    ScriptExhaustedError,
    to_response,
)

__all__ = [
    "FunctionModel",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedRequest",
    "to_response",
]

try:  # the local Workers AI / OpenAI wire server, for tests against real HTTP
    from .testing_server import WireServer
except ImportError:  # pragma: no cover - a partial install
    pass
else:
    __all__ += ["WireServer"]
