"""Hooks: plain callbacks around a run, its model requests and its tool calls.

A hook object has any of these methods (sync or async; the others are simply not called)::

    on_run_start(run)                          before the first request
    on_run_end(run, result, error)             once, last; ``result`` or ``error`` is None
    on_model_start(run, messages)              before each model request (retries included)
    on_model_end(run, response, error)         after it; ``response`` or ``error`` is None
    on_tool_start(run, call)                   before each tool call
    on_tool_end(run, call, result, error)      after it; a tool that failed in a way the model
                                               is told about gives a ``result`` with
                                               ``is_error=True``; ``error`` is an exception
                                               that stops the run (cancellation,
                                               ``on_tool_error="raise"``)

``run`` is a :class:`RunInfo`. Every ``*_start`` has exactly one matching ``*_end``, also when
the run fails or is cancelled, or a start hook raises. With several hook objects, ``*_start`` methods are called in
the order given and ``*_end`` methods in the reverse order, the way nested ``with`` blocks
open and close, so the first hook wraps all the others. Tool hooks of calls that run in
parallel run in parallel too.

An exception in a hook is raised, wrapped in :class:`~agentkit.errors.HookError`: the run stops
with it (its ``.messages`` and ``.usage`` as for any failed run). When the run is already
failing, a hook's own error cannot replace the run's: it is logged as a warning on the
``agentkit`` logger and the run's error is raised.

:class:`Hooks` is an optional base class with every method doing nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, HookError
from .messages import Message, ModelResponse, ToolCall, ToolResult, Usage

if TYPE_CHECKING:
    from .settings import ModelSettings

__all__ = ["HOOK_METHODS", "Hooks", "RunInfo"]

_log = logging.getLogger("agentkit.hooks")

#: The methods a hook object may have.
HOOK_METHODS = (
    "on_run_start",
    "on_run_end",
    "on_model_start",
    "on_model_end",
    "on_tool_start",
    "on_tool_end",
)


class Hooks:
    """A hook object that does nothing: subclass it and override what you need.

    Subclassing is optional; any object with some of the ``on_*`` methods will do.
    """

    def on_run_start(self, run: RunInfo) -> Any:
        """Before the first request of a run."""

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> Any:
        """After the run: ``result`` is the :class:`~agentkit.agent.RunResult`, or ``error``."""

    def on_model_start(self, run: RunInfo, messages: Sequence[Message]) -> Any:
        """Before a model request; ``messages`` is what is sent (do not change it)."""

    def on_model_end(
        self, run: RunInfo, response: ModelResponse | None, error: BaseException | None
    ) -> Any:
        """After a model request (its retries included): the response, or the error."""

    def on_tool_start(self, run: RunInfo, call: ToolCall) -> Any:
        """Before a tool call runs."""

    def on_tool_end(
        self,
        run: RunInfo,
        call: ToolCall,
        result: ToolResult | None,
        error: BaseException | None,
    ) -> Any:
        """After a tool call: its result (``is_error`` if it failed), or the exception."""


class RunInfo:
    """What hooks know about the run they are called for.

    ``agent`` is the :class:`~agentkit.agent.Agent`; ``run_id`` the run's id; ``deps`` what
    was passed as ``deps=``; ``messages`` the live transcript; ``stream`` whether the run is
    streamed; ``settings`` the sampling settings of the run, then of the current request (the
    model's own defaults apply under them); ``conversation_id`` identifies the conversation
    (the run id unless set). ``step`` and ``usage`` are read live.
    """

    __slots__ = (
        "__weakref__",
        "_run",
        "agent",
        "conversation_id",
        "deps",
        "messages",
        "run_id",
        "settings",
        "stream",
    )

    def __init__(
        self,
        run: Any,
        agent: Any,
        *,
        stream: bool,
        settings: ModelSettings | None,
        conversation_id: str | None = None,
    ) -> None:
        self._run = run
        self.agent = agent
        self.run_id: str = run.run_id
        self.deps: Any = run.deps
        self.messages: list[Message] = run.messages
        self.stream = stream
        self.settings = settings
        self.conversation_id: str = conversation_id or run.run_id

    @property
    def step(self) -> int:
        """Model requests answered so far in this run."""
        return int(self._run.steps)

    @property
    def usage(self) -> Usage:
        """What the run has used so far."""
        usage: Usage = self._run.usage()
        return usage

    def __repr__(self) -> str:
        return f"RunInfo(run_id={self.run_id!r}, step={self.step}, stream={self.stream})"


# --- the dispatch the agent uses -----------------------------------------------------------


def _describe(hook: object, method: str) -> str:
    return f"{type(hook).__name__}.{method}"


class HookSet:
    """Hook objects, checked once and split per event (what an ``Agent`` keeps)."""

    __slots__ = ("hooks", "methods")

    def __init__(self, hooks: Sequence[object]) -> None:
        for hook in hooks:
            names = [name for name in dir(hook) if name.startswith("on_")]
            unknown = sorted(set(names) - set(HOOK_METHODS))
            if unknown:
                raise ConfigurationError(
                    f"hook object {type(hook).__name__} has method(s) {', '.join(unknown)}, "
                    f"which agentkit never calls; hook methods are: {', '.join(HOOK_METHODS)}"
                )
            if not any(callable(getattr(hook, name, None)) for name in HOOK_METHODS):
                raise ConfigurationError(
                    f"{hook!r} is not a hook object: it has none of the methods "
                    f"{', '.join(HOOK_METHODS)}"
                )
        self.hooks = tuple(hooks)
        self.methods: dict[str, tuple[tuple[str, Callable[..., Any]], ...]] = {}
        for name in HOOK_METHODS:
            found = [
                (_describe(h, name), getattr(h, name))
                for h in self.hooks
                if callable(getattr(h, name, None))
            ]
            if name.endswith("_end"):
                found.reverse()
            self.methods[name] = tuple(found)

    @classmethod
    def of(cls, hooks: object | Sequence[object] | None) -> HookSet | None:
        """The set for ``Agent(hooks=...)``: one object, a sequence of them, or ``None``."""
        if hooks is None:
            return None
        if isinstance(hooks, list | tuple):
            return cls(hooks) if hooks else None
        return cls([hooks])

    def __add__(self, other: HookSet) -> HookSet:
        return HookSet(self.hooks + other.hooks)


async def _call(methods: tuple[tuple[str, Callable[..., Any]], ...], *args: Any) -> None:
    for name, method in methods:  # an empty tuple (no hook has the method) costs one await
        try:
            out = method(*args)
            if out is not None and inspect.isawaitable(out):
                await out
        except Exception as exc:
            raise HookError(
                f"hook {name} raised {type(exc).__name__}: {exc}", hook=name, original=exc
            ) from exc


class RunHooks:
    """The hooks of one run, with what is open (so every start gets its end)."""

    __slots__ = ("_ended", "_methods", "_model_open", "info")

    def __init__(self, hooks: HookSet, info: RunInfo) -> None:
        self._methods = hooks.methods
        self.info = info
        self._model_open = False
        self._ended = False

    async def run_start(self) -> None:
        await _call(self._methods["on_run_start"], self.info)

    async def model_start(
        self, messages: Sequence[Message], settings: ModelSettings | None
    ) -> None:
        self._model_open = True
        self.info.settings = settings
        await _call(self._methods["on_model_start"], self.info, messages)

    async def model_end(self, response: ModelResponse) -> None:
        self._model_open = False
        await _call(self._methods["on_model_end"], self.info, response, None)

    async def tool(
        self,
        run_tool: Callable[[Any, ToolCall], Awaitable[ToolResult]],
        run: Any,
        call: ToolCall,
    ) -> ToolResult:
        """Run one tool call between ``on_tool_start`` and ``on_tool_end``."""
        methods = self._methods
        try:
            await _call(methods["on_tool_start"], self.info, call)
            result = await run_tool(run, call)
        except BaseException as exc:
            await self._quietly(methods["on_tool_end"], call, None, exc)
            raise
        await _call(methods["on_tool_end"], self.info, call, result, None)
        return result

    async def run_end(self, result: Any) -> None:
        self._ended = True
        await _call(self._methods["on_run_end"], self.info, result, None)

    async def run_failed(self, error: BaseException) -> None:
        """The run stops with ``error``: end the open request, then the run. Never raises."""
        if self._model_open:
            self._model_open = False
            await self._quietly(self._methods["on_model_end"], None, error)
        if not self._ended:
            self._ended = True
            await self._quietly(self._methods["on_run_end"], None, error)

    async def _quietly(
        self, methods: tuple[tuple[str, Callable[..., Any]], ...], *args: Any
    ) -> None:
        # The run is already failing: a hook error is logged, the run's own error goes on.
        for name, method in methods:
            try:
                out = method(self.info, *args)
                if out is not None and inspect.isawaitable(out):
                    await out
            except Exception as exc:
                _log.warning(
                    "run %s: hook %s raised %s: %s (while the run was stopping; the run's own "
                    "error is raised)",
                    self.info.run_id,
                    name,
                    type(exc).__name__,
                    exc,
                )


# --- what an agent keeps: its hooks and its tracing switch ---------------------------------

#: The hooks that ``agentkit.instrument()`` adds to every agent that does not opt out.
global_tracing: HookSet | None = None


class AgentHooks:
    """An agent's hooks and its ``instrument=`` choice, turned into the hooks of each run.

    ``instrument``: ``None`` follows :func:`agentkit.instrument` (off until it is called);
    ``False`` never traces; ``True`` always traces (with the global settings once
    ``agentkit.instrument()`` was called, else the global tracer provider and no content); an
    :class:`agentkit.tracing.Instrumentation` traces with its own settings.
    """

    __slots__ = ("_cache", "_own_tracing", "hooks", "instrument")

    def __init__(self, hooks: object | Sequence[object] | None, instrument: Any) -> None:
        self.hooks = HookSet.of(hooks)
        self.instrument = instrument
        self._own_tracing: HookSet | None = None
        if instrument is not None and not isinstance(instrument, bool):
            self._own_tracing = HookSet([_tracing_hooks(instrument)])
        elif instrument is True:
            self._own_tracing = HookSet([_tracing_hooks(None)])
        self._cache: tuple[HookSet | None, HookSet | None] = (None, self.hooks)

    def _tracing(self) -> HookSet | None:
        instrument = self.instrument
        if instrument is None:
            return global_tracing
        if instrument is False:
            return None
        if instrument is True and global_tracing is not None:
            return global_tracing
        return self._own_tracing

    def for_run(
        self,
        run: Any,
        agent: Any,
        *,
        stream: bool,
        settings: ModelSettings | None,
        conversation_id: str | None = None,
    ) -> RunHooks | None:
        """The hooks of one run, or ``None`` when there are none (the loop then pays nothing)."""
        tracing = self._tracing()
        key, combined = self._cache
        if key is not tracing:
            if tracing is None:
                combined = self.hooks
            else:
                combined = tracing if self.hooks is None else tracing + self.hooks
            self._cache = (tracing, combined)
        if combined is None:
            return None
        info = RunInfo(
            run, agent, stream=stream, settings=settings, conversation_id=conversation_id
        )
        return RunHooks(combined, info)


def _tracing_hooks(instrument: Any) -> object:
    try:
        from .tracing import tracing_hooks
    except ImportError as exc:  # opentelemetry-api is not installed
        raise ConfigurationError(
            "tracing needs the OpenTelemetry API: pip install 'agentkit[otel]'"
        ) from exc
    return tracing_hooks(instrument)
