"""Model backends: one :class:`Model` protocol, and the servers agentkit speaks to."""

from .base import Model

__all__ = ["Model"]
