"""Tools from plain Python functions: ``@tool``, :class:`Tool`, :class:`ToolContext`.

``@tool`` reads a function's signature and docstring once, at decoration, and builds:

- the JSON Schema of its parameters, compact and shaped for small models (every top-level
  property has one string ``type`` and a ``description``, as the Workers AI schema requires);
- a validator that accepts what small models send in good faith (``"3"`` for 3, ``"true"``,
  objects and arrays sent as JSON text, ``null`` for an optional argument);
- the call plan: which arguments go by position, where the run context is injected.

The decorated object is a :class:`Tool` and is still callable like the function.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import copy
import dataclasses
import enum
import functools
import inspect
import logging
import os
import threading
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

import pydantic_core
from pydantic import BaseModel, ValidationError

from ._json import JSONNestingError
from ._json import loads as json_loads
from ._schema import (
    FunctionSchema,
    arguments_error,
    build_function_schema,
    format_validation_error,
    make_error,
)
from .errors import (
    ConfigurationError,
    ToolArgumentsError,
    ToolError,
    ToolExecutionError,
    ToolTimeoutError,
)
from .messages import Message, ToolResult, Usage

__all__ = [
    "MAX_ABANDONED_TOOL_THREADS",
    "MAX_TOOL_THREADS",
    "Tool",
    "ToolContext",
    "to_content",
    "tool",
]

DepsT = TypeVar("DepsT")

logger = logging.getLogger("agentkit.tools")

# A sync tool with blocking=None moves from worker threads to the event loop after _QUICK_RUNS
# consecutive runs each shorter than _QUICK seconds (a thread hand-off costs more than that), and
# back to threads for good if a run on the loop ever takes longer than _INLINE_LIMIT seconds.
_QUICK = 200e-6
_QUICK_RUNS = 3
_INLINE_LIMIT = 2e-3

#: What :func:`to_content` gives for a function that returned ``None``.
NO_OUTPUT = "(no output)"


@dataclass
class ToolContext(Generic[DepsT]):
    """The run context, filled by the agent; a parameter annotated ``ToolContext[...]`` gets it.

    The parameter is left out of the tool's schema (the model never sees it). ``deps`` is what
    was passed as ``deps=`` to the run; ``messages`` is the transcript so far.
    ``idempotency_key`` is one key per call (run id and call id): a durable run that runs a
    call again after a crash gives it the same key, so a tool with side effects can pass it on
    (as an ``Idempotency-Key`` header, a unique database key) and do its work once.
    """

    deps: DepsT
    run_id: str = ""
    messages: list[Message] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    step: int = 0
    usage: Usage = field(default_factory=Usage)
    idempotency_key: str = ""

    def add_usage(self, usage: Usage) -> None:
        """Report usage from nested work (an agent run inside a tool) so the run counts it."""
        self.usage = self.usage + usage


def to_content(value: Any) -> str:
    """The text a model sees for a tool's return value.

    - ``str``: as is (never JSON-quoted again);
    - pydantic models, dataclasses, dicts, lists, tuples, sets: compact JSON, non-ASCII kept;
    - ``None``: ``"(no output)"``, so the model knows the call finished;
    - ``bytes``: decoded as UTF-8 (invalid bytes replaced); an ``Enum``: its value;
    - a generator: ``TypeError`` (its repr would tell the model nothing);
    - anything else: ``str(value)``.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return NO_OUTPUT
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        raise TypeError("a generator is not a result; collect its items and return a list")
    if isinstance(value, dict | list | tuple | set | frozenset | BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return pydantic_core.to_json(value, fallback=str).decode()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, enum.Enum):
        return to_content(value.value)
    return str(value)


def _check_options(timeout: float | None, max_retries: int | None) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ConfigurationError(
            f"tool timeout must be a positive number of seconds or None, got {timeout!r}"
        )
    if max_retries is not None and (
        isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
    ):
        raise ConfigurationError(
            f"tool max_retries must be a non-negative integer or None, got {max_retries!r}"
        )


def _is_method(fn: Any) -> bool:
    """A plain function defined in a class body, whose first parameter is ``self``."""
    if not inspect.isfunction(fn):
        return False
    scope = fn.__qualname__.split(".")
    if len(scope) < 2 or scope[-2] == "<locals>":
        return False
    first = next(iter(inspect.signature(fn).parameters.values()), None)
    return first is not None and first.name == "self" and first.kind is not first.VAR_POSITIONAL


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  (callable objects)
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)


class Tool:
    """A function the model can call, with its schema, validator and runner.

    Build one with :func:`tool` (``@tool`` / ``@tool(...)``) or :meth:`Tool.from_function`.
    Calling the tool calls the function directly. :meth:`run` is what the agent uses: it
    validates the model's arguments, injects the :class:`ToolContext`, applies the timeout and
    returns a :class:`~agentkit.messages.ToolResult`.

    The schema (``parameters``) is built once; treat it as read-only.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    timeout: float | None
    max_retries: int | None
    requires_approval: bool
    sequential: bool
    blocking: bool | None
    is_async: bool
    # A tool made from a method: bound to an instance (or class) when read from it.
    _binding: Literal["instance", "class"] | None = None
    _bound: bool = False
    _attribute: str | None = None

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        requires_approval: bool = False,
        sequential: bool = False,
        blocking: bool | None = None,
    ) -> None:
        if isinstance(function, Tool):
            function = function.function
        # A method in a class body: ``self``/``cls`` is left out, and filled when it is bound.
        binding: Literal["instance", "class"] | None = None
        if isinstance(function, classmethod):
            function, binding = function.__func__, "class"
        elif isinstance(function, staticmethod):
            function = function.__func__
        elif _is_method(function):
            binding = "instance"
        _check_options(timeout, max_retries)
        schema = build_function_schema(
            function,
            name=name,
            description=description,
            context_type=ToolContext,
            skip_first=binding is not None,
        )
        self._binding = binding
        self._schema: FunctionSchema = schema
        self.function = function
        self.name = schema.name
        self.description = schema.description
        self.parameters = schema.parameters
        self.timeout = float(timeout) if timeout is not None else None
        self.max_retries = max_retries
        self.requires_approval = bool(requires_approval)
        self.sequential = bool(sequential)
        self.is_async = _is_async_callable(function)
        if blocking is False and timeout is not None:
            raise ConfigurationError(
                f"tool '{self.name}': blocking=False runs the function on the event loop, where a "
                "timeout cannot interrupt it; drop the timeout or use blocking=True"
            )
        self.blocking = blocking
        # Sync functions: run directly on the loop (inline) or in a worker thread; see `tool`.
        self._inline = not self.is_async and blocking is False
        self._adaptive = not self.is_async and blocking is None and self.timeout is None
        self._quick_runs = 0
        self._flat: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        # Some callables (partials, builtins) lack parts of the metadata: copy what exists.
        functools.update_wrapper(self, function)
        # A keyword-only call works for nearly every tool; positional plans only when needed.
        self._simple = schema.positional is None and schema.var_keyword is None

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        requires_approval: bool = False,
        sequential: bool = False,
        blocking: bool | None = None,
    ) -> Tool:
        """Make a tool from ``fn``; the same as ``tool(fn, ...)``."""
        return cls(
            fn,
            name=name,
            description=description,
            timeout=timeout,
            max_retries=max_retries,
            requires_approval=requires_approval,
            sequential=sequential,
            blocking=blocking,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, exactly as if it were not decorated."""
        return self.function(*args, **kwargs)

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = name

    def __get__(self, instance: Any, owner: type | None = None) -> Tool:
        """A tool made from a method, read from an instance (or from the class, for a
        ``classmethod``), is a tool bound to it. Any other tool is itself."""
        if self._binding is None or self._bound:
            return self
        target = instance if self._binding == "instance" else owner
        if target is None:
            return self  # read from the class: still needs an instance
        bound = copy.copy(self)
        bound.function = types.MethodType(self.function, target)
        bound._bound = True
        if instance is not None and self._attribute is not None and self._binding == "instance":
            # Cached on the instance: the same bound tool on every access.
            with contextlib.suppress(AttributeError, TypeError):
                instance.__dict__[self._attribute] = bound
        return bound

    @property
    def is_unbound_method(self) -> bool:
        """Whether this tool is a method read from its class, so it has no instance to run on."""
        return self._binding is not None and not self._bound

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, parameters={list(self.parameters['properties'])!r})"

    @property
    def takes_context(self) -> bool:
        """Whether the function has a :class:`ToolContext` parameter."""
        return self._schema.context_param is not None

    def definition(self, style: Literal["function", "flat"] = "function") -> dict[str, Any]:
        """The tool as Workers AI (and OpenAI) expect it in ``tools``.

        ``"function"``: ``{"type": "function", "function": {name, description, parameters}}``;
        ``"flat"``: ``{name, description, parameters}``. The outer dicts are fresh on every
        call; ``parameters`` is shared, do not mutate it.
        """
        if style == "function":
            return {"type": "function", "function": dict(self._flat)}
        if style == "flat":
            return dict(self._flat)
        raise ConfigurationError(f"definition style must be 'function' or 'flat', got {style!r}")

    # --- validation ----------------------------------------------------------------------------

    def _as_mapping(self, arguments: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
        """The model's arguments as a mapping: ``None`` is ``{}``, text is parsed as JSON (or a
        Python literal); anything else is a :class:`~agentkit.errors.ToolArgumentsError`."""
        if arguments is None:
            return {}
        if isinstance(arguments, str):
            return self._parse_text(arguments)
        if isinstance(arguments, Mapping):
            return arguments
        kind = type(arguments).__name__
        raise arguments_error(
            self.name,
            [
                make_error(
                    "arguments",
                    "a JSON object",
                    kind,
                    f"arguments: expected a JSON object, got {kind}",
                )
            ],
        )

    def validate(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """Check the model's arguments and return them converted, keyed by parameter name.

        Accepts a mapping, a JSON object as text, or ``None`` (no arguments). Lenient where a
        small model means well: ``"3"`` for 3, ``"true"`` for true, an object or array argument
        sent as JSON text, ``null`` for an argument that has a default or accepts None.
        Raises :class:`~agentkit.errors.ToolArgumentsError` whose text tells the model what to
        fix. For most tools the result can be passed as ``function(**result)``; :meth:`run`
        also handles positional-only and ``*args`` parameters.
        """
        schema = self._schema
        data = self._as_mapping(arguments)

        unknown = [k for k in data if k not in schema.allowed]
        if not unknown:
            return self._validate_known(data)
        # Report unknown names together with any other problem, so one retry can fix all.
        problems = [
            make_error(
                str(k),
                f"one of: {schema.allowed_text}",
                "an unknown argument",
                f"{k}: unknown argument; allowed arguments: {schema.allowed_text}",
            )
            for k in unknown
        ]
        try:
            self._validate_known({k: v for k, v in data.items() if k in schema.allowed})
        except ToolArgumentsError as exc:
            problems += exc.errors
        raise arguments_error(self.name, problems)

    def _validate_known(self, data: Mapping[str, Any]) -> dict[str, Any]:
        schema = self._schema
        # Small fixes in a copy, only when something needs fixing (the model's dict is not touched).
        fixed: dict[str, Any] | None = None
        if schema.json_params or schema.drop_none:
            for key, value in data.items():
                if value is None and key in schema.drop_none:
                    if fixed is None:
                        fixed = dict(data)
                    del fixed[key]
                elif isinstance(value, str) and key in schema.json_params:
                    decoded = _decode_json(value)
                    if decoded is not value:
                        if fixed is None:
                            fixed = dict(data)
                        fixed[key] = decoded
        try:
            result: dict[str, Any] = schema.adapter.validate_python(
                fixed if fixed is not None else data
            )
        except ValidationError as exc:
            raise format_validation_error(schema, exc) from None
        for key, value in schema.fill.items():
            if key not in result:
                result[key] = value
        return result

    def _parse_text(self, text: str) -> Mapping[str, Any]:
        stripped = text.strip()
        if not stripped:
            return {}
        nested = False
        try:
            data = json_loads(stripped)
        except JSONNestingError:
            data, nested = _MISSING, True
        except ValueError:
            data = _MISSING
        if isinstance(data, dict):
            return data
        got = (
            "JSON nested too deeply"
            if nested
            else "invalid JSON"
            if data is _MISSING
            else f"JSON {type(data).__name__}"
        )
        raise arguments_error(
            self.name,
            [
                make_error(
                    "arguments",
                    "a JSON object",
                    got,
                    f'arguments: expected a JSON object like {{"name": value}}, got {got}',
                )
            ],
        )

    # --- running ----------------------------------------------------------------------------------

    async def run(
        self,
        arguments: Mapping[str, Any] | str | None,
        context: ToolContext[Any] | None = None,
    ) -> ToolResult:
        """Validate ``arguments``, call the function and return its result for the model.

        Async functions are awaited; sync ones run in a worker thread so they do not block the
        event loop. With a ``timeout``, a call that runs longer raises
        :class:`~agentkit.errors.ToolTimeoutError` (a sync function's thread cannot be stopped:
        it is abandoned and finishes in the background). An exception from the function is
        raised as :class:`~agentkit.errors.ToolExecutionError` with ``.original`` set; a
        :class:`~agentkit.errors.ToolError` raised on purpose by the function passes through.
        """
        kwargs = self.validate(arguments)
        value = await self.run_validated(kwargs, context)
        try:
            content = to_content(value)
        except Exception as exc:  # a circular structure, a __str__ that raises...
            raise ToolExecutionError(
                f"tool '{self.name}' returned a {type(value).__name__} that cannot be turned "
                f"into text ({type(exc).__name__}: {exc}); return a str, JSON-ready data or a "
                "pydantic model",
                tool_name=self.name,
                original=exc,
            ) from exc
        return ToolResult(
            content=content,
            value=value,
            is_error=False,
            tool_call_id=context.tool_call_id if context is not None else None,
            name=self.name,
        )

    async def run_validated(
        self, arguments: dict[str, Any], context: ToolContext[Any] | None = None
    ) -> Any:
        """Call the function with arguments already returned by :meth:`validate`.

        Returns the function's value (not a :class:`~agentkit.messages.ToolResult`); errors and
        timeout as in :meth:`run`.
        """
        schema = self._schema
        if schema.context_param is not None:
            if context is None:
                context = ToolContext(deps=None, tool_name=self.name)
            arguments = {**arguments, schema.context_param: context}
        try:
            if self.timeout is None:
                return await self._invoke(arguments)
            scope = asyncio.timeout(self.timeout)
            try:
                async with scope:
                    return await self._invoke(arguments)
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # the function's own TimeoutError: handled below as a failure
                waited = " before a thread was free to start it; it did not run"
                raise ToolTimeoutError(
                    f"tool '{self.name}' timed out after {self.timeout:g} s"
                    + (waited if getattr(exc.__cause__, "agentkit_not_started", False) else ""),
                    tool_name=self.name,
                    timeout=self.timeout,
                ) from None
        except ToolError as exc:
            if exc.tool_name is None:
                exc.tool_name = self.name
            raise
        except Exception as exc:
            raise ToolExecutionError(
                f"tool '{self.name}' failed: {type(exc).__name__}: {exc}",
                tool_name=self.name,
                original=exc,
            ) from exc
        except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            # Raised on, or passed to, the event loop these would stop every run on it: typed,
            # they end the run of this call only (the agent does not send them to the model).
            raise ToolExecutionError(
                f"tool '{self.name}' raised {type(exc).__name__}"
                + (f": {exc}" if str(exc) else "")
                + "; the run stops",
                tool_name=self.name,
                original=exc,
            ) from exc

    async def _invoke(self, arguments: dict[str, Any]) -> Any:
        if self._simple:
            args: tuple[Any, ...] = ()
            kwargs = arguments
        else:
            args, kwargs = self._split(arguments)
        if self.is_async:
            return await self.function(*args, **kwargs)
        if self._inline:
            start = time.perf_counter()
            result = self.function(*args, **kwargs)
            if self._adaptive and time.perf_counter() - start > _INLINE_LIMIT:
                self._inline = self._adaptive = False  # it can block: worker threads from now on
                logger.debug(
                    "tool %s took over %g s on the event loop; threads from now on",
                    self.name,
                    _INLINE_LIMIT,
                )
        elif self._adaptive:
            result, elapsed = await _workers.run(_timed, self.function, args, kwargs)
            self._quick_runs = self._quick_runs + 1 if elapsed < _QUICK else 0
            if self._quick_runs >= _QUICK_RUNS:
                self._inline = True
        else:
            result = await _workers.run(self.function, *args, **kwargs)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            return await _await(result)
        return result

    def _split(self, arguments: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        schema = self._schema
        kwargs = dict(arguments)
        args: list[Any] = []
        if schema.positional is not None:
            for name in schema.positional:
                if name == schema.var_positional:
                    args.extend(kwargs.pop(name, ()))
                    break
                if name not in kwargs:
                    break  # later ones go by keyword, or fall back to their defaults
                args.append(kwargs.pop(name))
        if schema.var_keyword is not None:
            kwargs.update(kwargs.pop(schema.var_keyword, {}))
        return tuple(args), kwargs


class _Job:
    """One call handed to the worker threads."""

    __slots__ = ("call", "future", "loop", "state")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], call: Callable[[], Any]
    ) -> None:
        self.loop = loop
        self.future = future
        self.call = call
        self.state = _QUEUED


_QUEUED, _RUNNING, _ABANDONED, _FINISHED, _DROPPED = range(5)


class _Workers:
    """Daemon threads that run sync tools (instead of asyncio's default executor).

    Nothing waits for these threads when a loop or the interpreter ends: a tool stuck in a
    blocking call (abandoned after its timeout, or when the run is cancelled or Ctrl-C'd) can
    no longer hold up ``asyncio.run()`` or the exit until it returns. Context variables are
    copied into the call, as ``asyncio.to_thread`` does.

    - At most ``limit`` threads run calls that someone waits for; more calls wait their turn.
    - A call whose waiter gave up (timeout, cancel) before it started never runs.
    - A thread still inside a call nobody waits for any more is set aside: it no longer counts
      against ``limit`` and another thread takes its place, so stuck calls cannot starve the
      other tools. There are never more than ``limit + spare`` threads; once that many exist,
      calls wait until one returns. A set-aside thread that returns goes back to work, or ends
      if there are enough threads without it.
    """

    def __init__(self, limit: int, spare: int) -> None:
        self.limit = limit
        self.spare = spare
        self.threads = 0
        self.idle = 0  # threads waiting for a call and not yet woken for one
        self.abandoned = 0  # threads inside a call nobody waits for
        self._jobs: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)

    @property
    def busy(self) -> int:
        """Threads running a call (or about to)."""
        with self._lock:
            return self.threads - self.idle

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread; its result, or its exception."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        job = _Job(loop, loop.create_future(), functools.partial(context.run, fn, *args, **kwargs))
        with self._lock:
            self._jobs.append(job)
            grow = self._dispatch()
        if grow:
            self._start()
        try:
            ok, value = await job.future
        except asyncio.CancelledError as exc:
            if not self._give_up(job):
                # Marked, not replaced (asyncio.timeout turns only a plain CancelledError into
                # TimeoutError, with it as the cause): the timeout message can say so.
                exc.agentkit_not_started = True  # type: ignore[attr-defined]
            raise
        if ok:
            return value
        # Raised here, not set on the future: asyncio would throw a GeneratorExit from a
        # future into the task, which closes every coroutine on the way instead of raising.
        raise value

    def _dispatch(self) -> bool:
        """With the lock held, after a call was queued: wake a thread, or say to start one."""
        if self.idle > 0:
            self.idle -= 1
            self._wake.notify()
            return False
        if self.threads - self.abandoned < self.limit and self.threads < self.limit + self.spare:
            self.threads += 1
            return True
        return False  # the next thread to finish a call takes it

    def _start(self) -> None:
        number = self.threads
        threading.Thread(target=self._serve, name=f"agentkit-tool-{number}", daemon=True).start()

    def _give_up(self, job: _Job) -> bool:
        """The waiter of ``job`` is gone (timeout or cancel). Returns whether it had started."""
        grow = False
        with self._lock:
            if job.state == _QUEUED:
                job.state = _DROPPED  # never runs
                with contextlib.suppress(ValueError):
                    self._jobs.remove(job)
                return False
            if job.state == _DROPPED:
                return False
            if job.state == _RUNNING:
                job.state = _ABANDONED
                self.abandoned += 1
                if self.threads >= self.limit + self.spare:
                    logger.warning(
                        "%d sync tool threads are stuck in calls that timed out or were "
                        "cancelled, and no more threads are started (%d at most); other sync "
                        "tool calls wait until a thread returns",
                        self.abandoned,
                        self.limit + self.spare,
                    )
                grow = bool(self._jobs) and self._dispatch()
        if grow:
            self._start()
        return True

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            with self._lock:
                while not jobs:
                    self.idle += 1
                    self._wake.wait()
                job = jobs.popleft()
                # A cancelled future (read without the loop: a single attribute) means the
                # waiter gave up before the call started: it never runs.
                if job.future.done():
                    job.state = _DROPPED
                    continue
                job.state = _RUNNING
            try:
                outcome: tuple[bool, Any] = (True, job.call())
            except BaseException as exc:
                outcome = (False, exc)
            loop, future = job.loop, job.future
            with self._lock:
                if job.state == _ABANDONED:
                    self.abandoned -= 1
                job.state = _FINISHED
                retire = self.threads - self.abandoned > self.limit
                if retire:
                    self.threads -= 1
            del job
            # A closed loop (RuntimeError) means nobody waits for this result any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)
            del loop, future, outcome
            if retire:
                return


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if not future.done():  # done: cancelled, the call timed out or the run was cancelled
        future.set_result(outcome)


#: Threads that run sync tools at once, and threads stuck in abandoned calls set aside.
MAX_TOOL_THREADS = min(32, (os.cpu_count() or 1) + 4)
MAX_ABANDONED_TOOL_THREADS = 64
_workers = _Workers(MAX_TOOL_THREADS, MAX_ABANDONED_TOOL_THREADS)


def _timed(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


async def _await(value: Awaitable[Any]) -> Any:
    return await value


class _Missing:
    pass


_MISSING: Any = _Missing()


def _decode_json(text: str) -> Any:
    """``text`` decoded when it holds a JSON object or array, else ``text`` itself."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return text
    try:
        return json_loads(stripped)
    except ValueError:  # JSONNestingError included
        return text


@overload
def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    requires_approval: bool = False,
    sequential: bool = False,
    blocking: bool | None = None,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    requires_approval: bool = False,
    sequential: bool = False,
    blocking: bool | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    requires_approval: bool = False,
    sequential: bool = False,
    blocking: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool`: ``@tool`` or ``@tool(name=..., timeout=...)``.

    Args:
        fn: The function (sync or async). Its docstring describes the tool and its parameters
            (Google, NumPy, reST or Epydoc style); type annotations give the schema.
        name: The tool's name for the model (default: the function's name).
        description: Overrides the docstring's description.
        timeout: Seconds a call may take before :class:`~agentkit.errors.ToolTimeoutError`.
        max_retries: How many failed calls the agent tolerates for this tool (None: the agent's
            default).
        requires_approval: Ask the agent's approval callback before each call.
        sequential: Never run this tool concurrently with other tool calls.
        blocking: How a sync function is run. ``True``: always in a worker thread (for
            functions that wait on I/O or take long). ``False``: directly on the event loop
            (for quick pure functions; no timeout possible). ``None`` (default): in a worker
            thread until it has proved quick (a few runs under 200 µs each), then directly;
            a direct run that takes over 2 ms sends it back to threads for good.

    Raises:
        ToolDefinitionError: the signature cannot become a tool; the message names the
            parameter and what to change.
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "timeout": timeout,
        "max_retries": max_retries,
        "requires_approval": requires_approval,
        "sequential": sequential,
        "blocking": blocking,
    }
    if fn is None:

        def decorate(f: Callable[..., Any]) -> Tool:
            return Tool(f, **options)

        return decorate
    return Tool(fn, **options)
