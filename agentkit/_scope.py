"""What a model request may know about the run it serves, without a wider ``Model`` protocol.

The loop opens a :class:`RunScope` around each model request (a context variable, so concurrent
runs on one event loop never see each other's). HTTP backends read it to

- send the run's session-affinity key (``x-session-affinity``), so every request of one run
  reaches the replica that holds its cached prompt prefix;
- encode each message of the transcript for the wire once per run, not once per request;
- know the tool-call ids already used in the transcript, without scanning it each step.

A model called outside a run (``model.request(...)`` directly) sees no scope and works as
before. Users choose the key of the runs they start with :func:`session_affinity`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from .errors import ConfigurationError

__all__ = ["RunScope", "current_scope", "session_affinity", "session_affinity_key"]

_MAX_KEY = 256


class RunScope:
    """The state one run shares with the model backends it calls.

    ``wire`` maps a wire format to ``(messages, items)``: the transcript as last encoded (the
    message objects, to check that a new request starts with them) and each one's bytes. The loop never changes a message once it is in the transcript; a tool that edits
    ``ToolContext.messages`` in place makes the next request encode the transcript anew
    (replacing or removing a message is noticed; changing a message object's fields is not).
    """

    __slots__ = ("_token", "affinity_key", "seen_ids", "wire")

    def __init__(self, affinity_key: str | None, seen_ids: set[str]) -> None:
        self.affinity_key = affinity_key
        self.seen_ids = seen_ids  # call ids already in the transcript (kept by the loop)
        self.wire: dict[str, tuple[list[Any], list[bytes]]] = {}
        self._token: Token[RunScope | None] | None = None

    # ``with run_scope:`` makes it current for the model request inside the block. A run makes
    # one request at a time, so one token slot is enough (and no extra object per request).
    def __enter__(self) -> None:
        self._token = _scope.set(self)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _scope.reset(self._token)
            self._token = None


_scope: ContextVar[RunScope | None] = ContextVar("agentkit_run_scope", default=None)
_user_key: ContextVar[str | None] = ContextVar("agentkit_session_affinity", default=None)


def current_scope() -> RunScope | None:
    """The scope of the run whose model request is being made, if any."""
    return _scope.get()


def check_affinity_key(key: Any, what: str = "session affinity key") -> str:
    """``key`` if it can travel in an HTTP header, else a :class:`ValueError` saying why."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"the {what} must be a non-empty string, got {key!r}")
    if len(key) > _MAX_KEY:
        raise ValueError(f"the {what} has {len(key)} characters; at most {_MAX_KEY} are allowed")
    if not all(" " < c <= "~" for c in key):
        raise ValueError(
            f"the {what} {key!r} may hold only visible ASCII characters (no spaces or "
            "control characters): it is sent as an HTTP header"
        )
    return key


@contextmanager
def session_affinity(key: str) -> Iterator[None]:
    """Runs started inside the block send ``key`` as their session-affinity key.

    By default each run uses its own run id. Give one key to every run of a conversation (a
    session id) or to every attempt at one input (a batch input id), so their requests reach
    the replica that holds the cached prompt prefix::

        with session_affinity(f"chat-{session_id}"):
            result = await agent.run(prompt, message_history=history)
    """
    try:
        check_affinity_key(key)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    token = _user_key.set(key)
    try:
        yield
    finally:
        _user_key.reset(token)


def session_affinity_key() -> str | None:
    """The key set by the innermost :func:`session_affinity` block, if any."""
    return _user_key.get()
