"""What you need to test your agents offline: models that reply from a script or a function.

``ScriptedModel`` plays replies given in advance and records every request;
``FunctionModel`` computes each reply with your function; ``WireServer`` is a real local HTTP
server speaking the Workers AI and OpenAI wire formats, with faults on demand. See
``docs/testing.md``.
"""

from __future__ import annotations

from ..models.scripted import (
    FunctionModel,
    ScriptedModel,
    ScriptedRequest,
    ScriptExhaustedError,
    to_response,
)
from ._schema_check import schema_violations
from ._server import Reply, WireRequest, WireServer

__all__ = [
    "FunctionModel",
    "Reply",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedRequest",
    "WireRequest",
    "WireServer",
    "schema_violations",
    "to_response",
]
