"""Model backends: one :class:`Model` protocol, and the servers agentkit speaks to."""

from ._http import RateLimit
from .base import Model
from .openai import OpenAICompatible
from .workers_ai import WorkersAI

__all__ = ["Model", "OpenAICompatible", "RateLimit", "WorkersAI"]
