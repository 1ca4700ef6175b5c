"""The wire server's former module path; everything here lives in :mod:`agentkit.testing`."""

from __future__ import annotations

from .testing._schema_check import schema_violations
from .testing._server import Reply, WireRequest, WireServer

__all__ = ["Reply", "WireRequest", "WireServer", "schema_violations"]
