"""The agent loop: ask the model, run the tools it calls, repeat until it answers.

One run, in order (``Agent.iter`` below is the whole of it):

1. Build the transcript: the system prompt (unless the history already starts with one), the
   ``message_history`` (or what a ``session`` stored: it then saves each step), then the new
   prompt. If the history ends with tool calls that have no result (a run that failed or was
   cancelled mid-step), those calls run first. Per-run options are resolved once (``_Options``).
2. Loop, bounded by ``max_steps`` model requests:
   - stop if the budget is spent (``MaxStepsExceeded``, or one last request without tools when
     ``on_max_steps="final_answer"``) or the tokens are (``UsageLimitExceeded``; with a token
     budget, each request's ``max_tokens`` is also capped by what is left);
   - ask the model (``model.request``, or ``model.stream`` when streaming);
   - tool calls: record the assistant turn, run the calls (at most ``max_tool_calls_per_step``:
     the others are left out of the turn, and a note after the results tells the model), append
     one result per call in call order, go round again;
   - no tool calls: the text is the final answer (parsed into ``output_type`` if one is set; a bad
     answer goes back to the model within ``retries``), and the run ends.

Whatever the model gets wrong in a call (unknown tool, invalid or unreadable arguments, a tool
that raises or times out, a refused approval) goes back to it as a tool message it can act on.
Every error that leaves a run carries ``.messages`` (the transcript) and ``.usage``; a tool
that raises ``KeyboardInterrupt`` or ``SystemExit`` ends its own run only.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import re
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, get_origin, overload

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypeVar

from ._json import JSONNestingError
from ._json import loads as json_loads
from ._repeats import RepeatGuard
from ._scope import RunScope, session_affinity_key
from ._selection import ToolSelector
from ._sync import iterate_sync, run_sync
from .errors import (
    ConfigurationError,
    MaxStepsExceeded,
    ModelResponseError,
    OutputValidationError,
    RepeatedToolCallsError,
    ToolApprovalDenied,
    ToolError,
    ToolExecutionError,
    ToolRetriesExceeded,
    UnknownToolError,
    UsageLimitExceeded,
)
from .hooks import AgentHooks, RunHooks
from .messages import (
    Message,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from .models.base import Model
from .sessions import Session, SessionRun
from .settings import ModelSettings
from .tools import Tool, ToolContext

if TYPE_CHECKING:
    from .tracing import Instrumentation

__all__ = [
    "DEFAULT_MAX_TOOL_CALLS_PER_STEP",
    "DEFAULT_MAX_TOOL_OUTPUT_CHARS",
    "Agent",
    "AgentEvent",
    "ApproveCallback",
    "RunFinished",
    "RunResult",
    "StepFinished",
    "ToolCallFinished",
    "ToolCallStarted",
]

OutputT = TypeVar("OutputT", default=str)
RunOutputT = TypeVar("RunOutputT")

_log = logging.getLogger("agentkit.agent")
_DEBUG = logging.DEBUG

#: Tool output longer than this is cut (with a note to the model) unless the agent says otherwise.
DEFAULT_MAX_TOOL_OUTPUT_CHARS = 20_000
#: The most tool calls of one model reply that run, unless the agent says otherwise.
DEFAULT_MAX_TOOL_CALLS_PER_STEP = 32

ApproveCallback = Callable[[ToolCall], "bool | Awaitable[bool]"]
"""Called before a call that needs approval; return (or await) ``True`` to let it run."""

_FINAL_ANSWER_PROMPT = (
    "You have used all your steps. Do not call any tool. "
    "Reply now with your best final answer from what you know so far."
)
_REPEAT_FINAL_PROMPT = (
    "You keep repeating tool calls whose results you already have. Do not call any tool. "
    "Reply now with your best final answer from what you know so far."
)
_CANCELLED = "The call was cancelled before it finished; there is no result."
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_MAX_JSON_ATTEMPTS = 200  # places in prose tried as the start of the answer's JSON value
_NESTING = "the answer nests arrays or objects too deeply to read; reply with a flat JSON value"


# --- what a run produces ---------------------------------------------------------------------


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of a finished run.

    ``messages`` is the whole transcript, ready to pass back as ``message_history``;
    ``new_messages`` the part this run added; ``steps`` the number of model requests.
    """

    output: OutputT
    messages: list[Message]
    new_messages: list[Message]
    usage: Usage
    steps: int
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data (``output`` dumped if it is a pydantic model)."""
        output: Any = self.output
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        return {
            "output": output,
            "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in self.messages],
            "usage": self.usage.model_dump(),
            "steps": self.steps,
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call is about to run."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call finished; ``result.is_error`` tells whether it failed."""

    call: ToolCall
    result: ToolResult


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A model request and its tool calls are done. ``usage`` is what that request used."""

    step: int
    usage: Usage


@dataclass(frozen=True, slots=True)
class RunFinished(Generic[OutputT]):
    """The last event of a run."""

    result: RunResult[OutputT]


AgentEvent = TextDelta | ToolCallStarted | ToolCallFinished | StepFinished | RunFinished[Any]


@dataclass(frozen=True, slots=True)
class _Options:
    """What one run goes by: the agent's settings with that run's overrides, resolved once."""

    max_steps: int
    settings: ModelSettings | None
    max_total_tokens: int | None
    output: TypeAdapter[Any] | None
    system: str  # the system prompt a new conversation starts with (recorded)
    extra: str  # the run's own instructions: sent with each of its requests, not recorded


class _Run:
    """The state of one run: the transcript and the counters. Nothing here is copied per step."""

    __slots__ = (
        "cached_tokens",
        "completion_tokens",
        "deps",
        "exhausted",
        "failures",
        "hooks",
        "instructed",
        "last_tokens",
        "messages",
        "offered",
        "opts",
        "output_failures",
        "prompt_tokens",
        "repeats",
        "requests",
        "run_id",
        "scope",
        "seen_ids",
        "start",
        "steps",
        "stored",
        "tool_calls",
        "total_tokens",
    )

    def __init__(
        self,
        messages: list[Message],
        deps: Any,
        opts: _Options,
        run_id: str,
        stored: SessionRun | None = None,
        max_repeats: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.messages = messages
        self.deps = deps
        self.opts = opts
        self.stored = stored  # the session this run loads from and saves to, if any
        self.instructed: tuple[Message | None, Message] | None = None  # see sent()
        self.start = len(messages)
        self.steps = 0
        self.requests = self.prompt_tokens = self.completion_tokens = self.total_tokens = 0
        self.cached_tokens = 0
        self.tool_calls = 0
        self.last_tokens = 0  # tokens of the last request (its prompt and reply)
        self.failures: dict[str, int] = {}  # consecutive failed calls per tool name
        self.exhausted: tuple[str, str] | None = None  # (tool, why) once a budget is spent
        self.output_failures = 0
        self.offered: tuple[Tool, ...] = ()  # the tools of the last request with tools
        self.repeats = RepeatGuard(max_repeats) if max_repeats is not None else None
        self.seen_ids = {call.id for m in messages for call in m.tool_calls}
        # What the model backend may know of this run (affinity key, wire encodings, used ids).
        # A session's runs share one key: one prompt cache for the whole conversation.
        key = session_affinity_key() or (stored.affinity_key if stored else None) or run_id
        self.scope = RunScope(key, self.seen_ids)
        self.hooks: RunHooks | None = None

    def add(self, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.total_tokens += usage.total_tokens
        self.cached_tokens += usage.cached_tokens

    def usage(self) -> Usage:
        return Usage(
            requests=self.requests,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            tool_calls=self.tool_calls,
            cached_tokens=self.cached_tokens,
        )

    def sent(self) -> list[Message]:
        """What the model is sent: the transcript as the session trims it, with the run's own
        instructions added to the system message."""
        messages = self.messages
        if self.stored is not None:
            messages = self.stored.session.trim(messages)
        if self.opts.extra:
            first = messages[0] if messages and messages[0].role == "system" else None
            if self.instructed is None or self.instructed[0] is not first:
                # Built once per run: the same message object in every request of the run.
                text = self.opts.extra if first is None else _join(first.content, self.opts.extra)
                self.instructed = (first, _message("system", text))
            messages = [self.instructed[1], *(messages if first is None else messages[1:])]
        return messages


# --- the agent -------------------------------------------------------------------------------


class Agent(Generic[OutputT]):
    """A model, its tools and the rules of the loop.

    Args:
        model: any :class:`~agentkit.models.Model` (``WorkersAI``, ``OpenAICompatible``,
            ``ScriptedModel``...).
        tools: ``Tool`` objects, or plain functions (turned into tools).
        system_prompt: instructions sent first in every new conversation.
        max_steps: the most model requests one run may make.
        settings: sampling settings passed to every request: a ``ModelSettings``, or a dict
            of its fields (checked here: a bad value raises ``ConfigurationError``).
        output_type: ``str`` (the default), or a pydantic model / type the final answer must
            parse into (the model is told the JSON schema).
        max_tool_concurrency: how many calls of one turn may run at once (``None``: all).
        on_tool_error: ``"return"`` tells the model a tool raised; ``"raise"`` stops the run
            with the :class:`~agentkit.errors.ToolExecutionError`.
        approve: called before each call to a tool marked ``requires_approval`` (or every call
            with ``approve_all=True``); sync or async, returns ``True`` to allow it.
        name, description: used when the agent becomes a tool (:meth:`as_tool`).
        on_max_steps: ``"raise"`` (:class:`~agentkit.errors.MaxStepsExceeded`) or
            ``"final_answer"``: one more request, without tools, for the best answer.
        max_total_tokens: stop with :class:`~agentkit.errors.UsageLimitExceeded` once the run
            has used this many tokens.
        max_tool_output_chars: longer tool output is cut, with a note saying so.
        retries: the default number of failed calls in a row a tool may make
            (``Tool.max_retries`` overrides it), and of unusable final answers.
        approve_all: ask ``approve`` before every call, not only for tools that require it.
        max_repeats: a call identical to one already answered in the run (same tool, same
            arguments) is not run again: the earlier result goes back with a note that the
            model has it. After this many such repeats the next one ends the run, as
            ``on_repeat`` says. ``None`` runs every call (for tools whose result changes
            between identical calls).
        on_repeat: ``"final_answer"`` (one last request, without tools, for the best answer)
            or ``"raise"`` (:class:`~agentkit.errors.RepeatedToolCallsError`) once the model
            has gone over ``max_repeats``.
        hooks: a hook object, or a list of them, called around the run, each model request
            and each tool call (see :mod:`agentkit.hooks`).
        instrument: OpenTelemetry traces: ``True`` on, ``False`` off, ``None`` (the default)
            as :func:`agentkit.instrument` set it, or an
            :class:`agentkit.tracing.Instrumentation` (see docs/observability.md).
        deps_type: the type of ``deps`` the tools expect; a run of an agent whose tools take a
            ``ToolContext`` then fails at its start when it gets no ``deps=`` (or deps of
            another type).
        max_tool_calls_per_step: the most calls of one model reply that run; the others are
            left out of the recorded turn, and a note after the results tells the model how
            many did not run and why.
        max_tools_per_request: offer the model only this many tools per request, those that best
            fit the conversation (``None``: all; see ``docs/mcp.md``).
    """

    def __init__(
        self,
        model: Model,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        *,
        system_prompt: str | None = None,
        max_steps: int = 10,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        output_type: type[OutputT] = str,  # type: ignore[assignment]
        max_tool_concurrency: int | None = None,
        on_tool_error: Literal["return", "raise"] = "return",
        approve: ApproveCallback | None = None,
        name: str | None = None,
        description: str | None = None,
        on_max_steps: Literal["raise", "final_answer"] = "raise",
        max_total_tokens: int | None = None,
        max_tool_output_chars: int = DEFAULT_MAX_TOOL_OUTPUT_CHARS,
        retries: int = 2,
        approve_all: bool = False,
        max_repeats: int | None = 2,
        on_repeat: Literal["final_answer", "raise"] = "final_answer",
        hooks: object | Sequence[object] | None = None,
        instrument: bool | Instrumentation | None = None,
        deps_type: type[Any] | None = None,
        max_tool_calls_per_step: int = DEFAULT_MAX_TOOL_CALLS_PER_STEP,
        max_tools_per_request: int | None = None,
    ) -> None:
        if max_steps < 1:
            raise ConfigurationError(f"max_steps must be at least 1, got {max_steps}")
        if max_tool_concurrency is not None and max_tool_concurrency < 1:
            raise ConfigurationError(
                f"max_tool_concurrency must be None (no limit) or at least 1, got {max_tool_concurrency}"
            )
        if on_tool_error not in ("return", "raise"):
            raise ConfigurationError(
                f"on_tool_error must be 'return' or 'raise', got {on_tool_error!r}"
            )
        if on_max_steps not in ("raise", "final_answer"):
            raise ConfigurationError(
                f"on_max_steps must be 'raise' or 'final_answer', got {on_max_steps!r}"
            )
        if max_total_tokens is not None and max_total_tokens < 1:
            raise ConfigurationError(f"max_total_tokens must be positive, got {max_total_tokens}")
        if max_tool_output_chars < 200:
            raise ConfigurationError(
                f"max_tool_output_chars must be at least 200, got {max_tool_output_chars}"
            )
        if retries < 0:
            raise ConfigurationError(f"retries must be 0 or more, got {retries}")
        if on_repeat not in ("raise", "final_answer"):
            raise ConfigurationError(
                f"on_repeat must be 'final_answer' or 'raise', got {on_repeat!r}"
            )
        if max_repeats is not None and max_repeats < 0:
            raise ConfigurationError(
                f"max_repeats must be None (no guard) or 0 or more, got {max_repeats}"
            )
        if max_tool_calls_per_step < 1:
            raise ConfigurationError(
                f"max_tool_calls_per_step must be at least 1, got {max_tool_calls_per_step}"
            )
        checked_settings = _model_settings(settings)

        self.model = model
        self.tools: tuple[Tool, ...] = tuple(
            t if isinstance(t, Tool) else Tool.from_function(t) for t in tools
        )
        self._tools: dict[str, Tool] = {}
        for t in self.tools:
            if t.is_unbound_method:
                raise ConfigurationError(
                    f"tool {t.name!r} is a method read from its class, with no instance to "
                    f"run on; pass it from an instance: Agent(model, [instance.{t.name}])"
                )
            if t.name in self._tools:
                raise ConfigurationError(
                    f"two tools are named {t.name!r}; give one another name with @tool(name=...)"
                )
            self._tools[t.name] = t
        self._selector = ToolSelector(self.tools, max_tools_per_request)
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.settings = checked_settings
        self.output_type = output_type
        self.max_tool_concurrency = max_tool_concurrency
        self.on_tool_error = on_tool_error
        self.approve = approve
        self.approve_all = approve_all
        self.name = name
        self.description = description
        self.on_max_steps = on_max_steps
        self.max_total_tokens = max_total_tokens
        self.max_tool_output_chars = max_tool_output_chars
        self.retries = retries
        self.max_repeats = max_repeats
        self.on_repeat = on_repeat
        self.deps_type = deps_type
        self._observers = AgentHooks(hooks, instrument)
        self.max_tool_calls_per_step = max_tool_calls_per_step

        # A structured output is parsed with a TypeAdapter, and its schema goes in the prompt.
        self._output: TypeAdapter[OutputT] | None = None
        instructions = system_prompt or ""
        if output_type is not str:
            self._output = TypeAdapter(output_type)
            instructions = _join(instructions, _schema_instructions(self._output))
        self._instructions = instructions
        self._adapters: dict[Any, TypeAdapter[Any]] = {}  # per-run output types, built once

    def __repr__(self) -> str:
        tools = ", ".join(self._tools)
        return f"Agent(model={self.model.model_name!r}, tools=[{tools}], name={self.name!r})"

    # --- entry points -------------------------------------------------------------------------

    @overload
    async def run(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: None = None,
        instructions: str | None = None,
    ) -> RunResult[OutputT]: ...

    @overload
    async def run(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[RunOutputT],
        instructions: str | None = None,
    ) -> RunResult[RunOutputT]: ...

    async def run(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[Any] | None = None,
        instructions: str | None = None,
    ) -> RunResult[Any]:
        """Run until the model gives a final answer, and return it with the transcript.

        ``message_history`` continues an earlier conversation (``result.messages``, or a failed
        run's ``error.messages``); ``session`` loads it from a store instead and saves the run
        there after every step (see :mod:`agentkit.sessions`). ``deps`` reaches tools through
        their ``ToolContext``. ``settings`` (merged over the agent's), ``max_steps``,
        ``max_total_tokens``, ``output_type`` and ``instructions`` (added to the system prompt)
        apply to this run only; the agent itself is not changed.
        """
        return await _final(
            self.iter(
                prompt,
                message_history=message_history,
                deps=deps,
                session=session,
                settings=settings,
                max_steps=max_steps,
                max_total_tokens=max_total_tokens,
                output_type=output_type,
                instructions=instructions,
            )
        )

    @overload
    def run_sync(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: None = None,
        instructions: str | None = None,
    ) -> RunResult[OutputT]: ...

    @overload
    def run_sync(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[RunOutputT],
        instructions: str | None = None,
    ) -> RunResult[RunOutputT]: ...

    def run_sync(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[Any] | None = None,
        instructions: str | None = None,
    ) -> RunResult[Any]:
        """:meth:`run` for synchronous code; also works inside a running event loop."""
        return run_sync(
            _final(
                self.iter(
                    prompt,
                    message_history=message_history,
                    deps=deps,
                    session=session,
                    settings=settings,
                    max_steps=max_steps,
                    max_total_tokens=max_total_tokens,
                    output_type=output_type,
                    instructions=instructions,
                )
            )
        )

    def stream(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[Any] | None = None,
        instructions: str | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The run as events, text streamed as it arrives (the options of :meth:`run`).

        Yields ``TextDelta``, ``ToolCallStarted``, ``ToolCallFinished``, ``StepFinished``, and
        last ``RunFinished(result)``. Text a step writes before its tool calls is shown but is
        not the answer: only a step without tool calls ends the run.
        """
        return self.iter(
            prompt,
            message_history=message_history,
            deps=deps,
            session=session,
            settings=settings,
            max_steps=max_steps,
            max_total_tokens=max_total_tokens,
            output_type=output_type,
            instructions=instructions,
            stream=True,
        )

    def stream_sync(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        max_total_tokens: int | None = None,
        output_type: type[Any] | None = None,
        instructions: str | None = None,
    ) -> Iterator[AgentEvent]:
        """:meth:`stream` for synchronous code: ``for event in agent.stream_sync(...)``.

        Works in scripts and inside a running event loop. Leaving the loop early (``break``,
        an exception) closes the run as cancelling it would: the transcript is kept valid.
        """
        return iterate_sync(
            self.stream(
                prompt,
                message_history=message_history,
                deps=deps,
                session=session,
                settings=settings,
                max_steps=max_steps,
                max_total_tokens=max_total_tokens,
                output_type=output_type,
                instructions=instructions,
            )
        )

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a tool another agent (a coordinator) can call with one ``request``.

        Each call is one run of this agent, with the caller's ``deps``; its answer is the tool
        result. Its usage (requests, tokens, tool calls) is added to the caller's run, also
        when it fails. A failed run comes back to the caller's model as a tool error it can
        act on (:class:`~agentkit.errors.ToolExecutionError`, the run's error as ``.original``
        with its transcript); with ``on_tool_error="raise"`` the caller stops instead.
        """
        agent = self
        tool_name = name or _tool_name(self.name) or "ask_agent"

        async def ask(context: ToolContext[Any], request: str) -> Any:
            """Hand a request to a specialist agent and get its answer.

            Args:
                request: what to do, in plain words, with every detail needed.
            """
            try:
                result = await agent.run(request, deps=context.deps)
            except Exception as exc:
                usage = getattr(exc, "usage", None)  # every error out of a run carries it
                if isinstance(usage, Usage):
                    context.add_usage(usage)
                raise ToolExecutionError(
                    f"the {tool_name} agent could not finish: {type(exc).__name__}: {exc}. "
                    "Try again with a simpler, more precise request, or go on without it.",
                    tool_name=tool_name,
                    original=exc,
                ) from exc
            context.add_usage(result.usage)
            return result.output

        return Tool.from_function(
            ask,
            name=tool_name,
            description=description
            or self.description
            or (f"Ask the {self.name} agent." if self.name else "Ask a specialist agent."),
        )

    def _options(
        self,
        settings: ModelSettings | Mapping[str, Any] | None,
        max_steps: int | None,
        max_total_tokens: int | None,
        output_type: type[Any] | None,
        instructions: str | None,
    ) -> _Options:
        """The agent's options with one run's overrides (the agent itself is not changed)."""
        if max_steps is not None and max_steps < 1:
            raise ConfigurationError(f"max_steps must be at least 1, got {max_steps}")
        if max_total_tokens is not None and max_total_tokens < 1:
            raise ConfigurationError(f"max_total_tokens must be positive, got {max_total_tokens}")
        settings = _model_settings(settings)  # a dict is validated into ModelSettings
        if instructions is not None and not isinstance(instructions, str):
            raise ConfigurationError(
                f"instructions must be a string, got {type(instructions).__name__}"
            )
        output, system, extra = self._output, self._instructions, instructions or ""
        if output_type is not None and output_type is not self.output_type:
            # Another output type for this run: its schema goes with this run's requests, and a
            # new conversation starts from the system prompt without the agent's own schema.
            output = None if output_type is str else self._adapter(output_type)
            system = self.system_prompt or ""
            if output is not None:
                extra = _join(extra, _schema_instructions(output))
        if settings is not None and self.settings is not None:
            settings = self.settings.merge(settings)
        return _Options(
            self.max_steps if max_steps is None else max_steps,
            self.settings if settings is None else settings,
            self.max_total_tokens if max_total_tokens is None else max_total_tokens,
            output,
            system,
            extra,
        )

    def _adapter(self, output_type: type[Any]) -> TypeAdapter[Any]:
        adapter = self._adapters.get(output_type)
        if adapter is None:
            adapter = self._adapters[output_type] = TypeAdapter(output_type)
        return adapter

    # --- the loop ---------------------------------------------------------------------------

    async def iter(
        self,
        prompt: str | Message | Sequence[Message] | None = None,
        *,
        message_history: Sequence[Message] | None = None,
        deps: Any = None,
        max_steps: int | None = None,
        stream: bool = False,
        session: Session | None = None,
        settings: ModelSettings | Mapping[str, Any] | None = None,
        max_total_tokens: int | None = None,
        output_type: type[Any] | None = None,
        instructions: str | None = None,
        run_id: str | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The run as events (the options of :meth:`run`). ``stream=False`` uses
        ``model.request`` and yields no text deltas.

        ``run_id`` names the run (in logs, ``ToolContext.run_id`` and the result); a random one
        is made when it is not given.
        """
        opts = self._options(settings, max_steps, max_total_tokens, output_type, instructions)
        limit = opts.max_steps
        # An identifier, not a secret; durable runs pass their own (the workflow id).
        run_id = run_id or f"{random.getrandbits(64):016x}"
        new_input = _as_messages(prompt)
        if self.deps_type is not None:
            self._check_deps(deps)
        stored: SessionRun | None = None
        if session is not None:  # the history comes from the session, locked for this run
            stored, message_history = await SessionRun.open(
                session, run_id, message_history, resuming=not new_input
            )
        messages = list(message_history or ())
        if opts.system and (not messages or messages[0].role != "system"):
            messages.insert(0, _message("system", opts.system))
        if not new_input and not message_history:  # a system prompt alone is not a request
            raise ConfigurationError(
                "nothing to run: pass a prompt or a message_history (or a session that holds one)"
            )
        if stored is not None:
            stored.saved = len(messages)  # stored already, or the agent's own system prompt
        run = _Run(messages, deps, opts, run_id, stored, self.max_repeats)
        hooks = run.hooks = self._observers.for_run(
            run,
            self,
            stream=stream,
            settings=opts.settings,
            conversation_id=None if session is None else session.session_id,
        )
        # A history that ends with unanswered tool calls is resumed: those calls run first.
        calls = _unanswered_calls(messages)
        last: ModelResponse | None = None  # the response whose calls are being answered
        final_request = False
        dropped_note = ""  # says which calls of the last reply were past the per-step cap
        try:
            if hooks is not None:
                await hooks.run_start()
            while True:
                # 1. Answer every call of the last assistant turn, results in call order.
                if calls:
                    # Calls past max_tool_calls_per_step (only in a history passed in: a new
                    # reply is cut to the cap when recorded) are answered at once with why they
                    # did not run; the others run in groups.
                    results = self._beyond_cap(run, calls)
                    cap = self.max_tool_calls_per_step
                    try:
                        for group in self._groups(calls[:cap]):
                            for i in group:
                                yield ToolCallStarted(calls[i])
                            await self._run_group(run, calls, group, results)
                            for i in group:
                                yield ToolCallFinished(calls[i], results[i])  # type: ignore[arg-type]
                        for i in range(cap, len(calls)):
                            yield ToolCallStarted(calls[i])
                            yield ToolCallFinished(calls[i], results[i])  # type: ignore[arg-type]
                    except BaseException as exc:
                        if isinstance(
                            exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit
                        ):
                            results = [r or _error_result(_CANCELLED) for r in results]
                        self._record(run, calls, results)
                        raise
                    self._record(run, calls, results)
                    calls = []
                    if dropped_note:
                        messages.append(_message("user", dropped_note))
                        dropped_note = ""
                    if run.exhausted is not None:
                        name, why = run.exhausted
                        raise ToolRetriesExceeded(why, tool_name=name)
                    if run.repeats is not None and run.repeats.exceeded and not final_request:
                        if self.on_repeat == "raise":
                            raise RepeatedToolCallsError(
                                f"{run.repeats.describe()}; the run is stopped. Pass "
                                "on_repeat='final_answer' to ask for a best answer instead, "
                                "or max_repeats=None if identical calls can give new results"
                            )
                        final_request = True
                        messages.append(_message("user", _REPEAT_FINAL_PROMPT))
                    if last is not None:
                        yield StepFinished(run.steps, last.usage)
                if new_input:
                    messages.extend(new_input)
                    new_input = []

                # 2. Limits, checked before each request.
                if run.steps >= limit and not final_request:
                    if self.on_max_steps != "final_answer":
                        raise MaxStepsExceeded(
                            f"the run made {run.steps} model requests (max_steps={limit}) without "
                            "a final answer; raise max_steps, or pass on_max_steps='final_answer' "
                            "to ask for a best answer instead"
                        )
                    final_request = True
                    messages.append(_message("user", _FINAL_ANSWER_PROMPT))
                settings = self._request_settings(run, opts.settings, opts.max_total_tokens)
                if stored is not None:  # the prompt and the results so far, kept before asking
                    await stored.save(messages)

                # 3. Ask the model (without tools for the one last answer after max_steps).
                tools: tuple[Tool, ...] = ()
                if not final_request:  # the run's earlier offer stays in place: a stable prefix
                    tools = run.offered = self._selector.select(messages, run.offered)
                started = time.perf_counter()
                if hooks is not None:
                    await hooks.model_start(run.sent(), settings)
                if stream:
                    response = None
                    # Closed at once if the caller stops iterating, not when collected.
                    async with aclosing(self._stream_step(tools, run, settings)) as step_events:
                        async for event in step_events:
                            if isinstance(event, ModelResponse):
                                response = event
                            else:
                                yield event
                    assert response is not None
                else:
                    with run.scope:  # what the backend may know of this run (see _scope)
                        response = await self._request(run, tools, settings)
                if hooks is not None:
                    await hooks.model_end(response)
                run.steps += 1
                run.requests += 1
                run.add(response.usage)
                run.last_tokens = response.usage.total_tokens
                if _log.isEnabledFor(_DEBUG):
                    _log.debug(
                        "run %s step %d: %s answered in %.1f ms: %d tool calls, %d chars of text, %d tokens",
                        run.run_id, run.steps, self.model.model_name,
                        (time.perf_counter() - started) * 1000, len(response.tool_calls),
                        len(response.text or ""), response.usage.total_tokens,
                    )  # fmt: skip

                # 4. Tool calls: record the turn; they are answered at the top of the loop.
                if response.tool_calls:
                    if final_request:
                        raise MaxStepsExceeded(
                            f"the run made {run.steps - 1} model requests (max_steps={limit}) and "
                            "the model still called tools when asked for a final answer"
                        )
                    calls = self._unique(run, response.tool_calls)
                    # A reply with more calls than run per step keeps only those that run: a
                    # turn of thousands of calls would not fit in the next request.
                    calls, dropped_note = self._cap_calls(run, calls)
                    messages.append(_message("assistant", response.text or "", tool_calls=calls))
                    if stored is not None:  # kept before the calls run: a crash resumes them
                        await stored.save(messages)
                    last = response
                    continue

                # 5. No tool calls: this is the final answer.
                text = response.text or ""
                messages.append(_message("assistant", text))
                if response.finish_reason == "length":
                    _log.warning(
                        "run %s: the final answer was cut at max_tokens (finish_reason='length'); "
                        "it is kept as it is; raise ModelSettings(max_tokens=...) for longer answers",
                        run.run_id,
                    )
                if opts.output is None:
                    output: Any = text
                else:
                    try:
                        output = opts.output.validate_python(_parse_json(text))
                    except ValueError as exc:  # ValidationError is a ValueError
                        problem = _describe_output_error(exc)
                        run.output_failures += 1
                        if final_request or run.output_failures > self.retries:
                            raise OutputValidationError(
                                f"the final answer did not match the output type after "
                                f"{run.output_failures} attempts: {problem}"
                            ) from exc
                        if response.finish_reason == "length":
                            problem += " (your answer was cut off: keep it shorter)"
                        messages.append(
                            _message(
                                "user",
                                f"Your answer could not be used: {problem}. Reply with "
                                "only the JSON value the instructions describe, nothing else.",
                            )
                        )
                        yield StepFinished(run.steps, response.usage)
                        continue
                if stored is not None:  # the answer
                    await stored.save(messages)
                yield StepFinished(run.steps, response.usage)
                result: RunResult[OutputT] = RunResult(
                    output=output,
                    messages=messages,
                    new_messages=messages[run.start :],
                    usage=run.usage(),
                    steps=run.steps,
                    run_id=run.run_id,
                )
                if hooks is not None:
                    await hooks.run_end(result)
                yield RunFinished(result)
                return
        except BaseException as exc:
            # A failed (or cancelled) run loses nothing: the error carries the transcript.
            if not isinstance(exc, GeneratorExit):
                try:
                    exc.messages = messages  # type: ignore[attr-defined]
                    exc.usage = run.usage()  # type: ignore[attr-defined]
                except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
                    pass
            if hooks is not None:
                await hooks.run_failed(exc)
            raise
        finally:
            if stored is not None:  # what the failed step produced is kept too
                await stored.close(messages)

    async def _stream_step(
        self, tools: Sequence[Tool], run: _Run, settings: ModelSettings | None
    ) -> AsyncGenerator[TextDelta | ModelResponse, None]:
        """One streamed request: text deltas as they come, then the whole response.

        Text that starts like a tool call written as text (``{``, ``[``, ``<``, a fence) is held
        back until the response shows whether it was one; if it was, it is not shown.
        """
        held: list[str] = []
        mode = 0  # 0: undecided, 1: passing text through, 2: holding it back
        response: ModelResponse | None = None
        events = self.model.stream(run.sent(), tools, settings)
        try:
            while True:
                with run.scope:  # only while the model works, never across our yields
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        break
                if isinstance(event, ResponseDone):
                    response = event.response
                elif mode == 1:
                    yield event
                else:
                    held.append(event.text)
                    if mode == 0:
                        head = "".join(held).lstrip()
                        if head:
                            mode = 2 if head[0] in "{[<`" else 1
                            if mode == 1:
                                yield TextDelta("".join(held))
                                held.clear()
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if response is None:
            raise ModelResponseError(
                f"the stream from {self.model.model_name} ended without its final ResponseDone event"
            )
        if held and not response.tool_calls:
            yield TextDelta("".join(held))
        yield response

    async def _request(
        self, run: _Run, tools: Sequence[Tool], settings: ModelSettings | None
    ) -> ModelResponse:
        """One model request. Durable execution overrides this (and :meth:`_stream_step`,
        :meth:`_run_tool`) to record each one as a step."""
        return await self.model.request(run.sent(), tools, settings)

    def _request_settings(
        self, run: _Run, settings: ModelSettings | None, budget: int | None
    ) -> ModelSettings | None:
        """The ``settings`` of the next request. With a token ``budget``, stop when it is
        spent, and cap ``max_tokens`` so the reply fits in what is left.

        The next prompt holds at least the previous prompt and reply, so that much is counted
        as spent before the reply gets what remains.
        """
        if budget is None:
            return settings
        left = budget - run.total_tokens - run.last_tokens
        if left < 1:
            why = f"the run has used {run.total_tokens} tokens"
            if run.total_tokens < budget:
                why += f" and the next prompt alone (at least {run.last_tokens} tokens) would reach"
            else:
                why += ", reaching"
            raise UsageLimitExceeded(
                f"{why} its max_total_tokens={budget}; raise the limit or start from a shorter "
                "history"
            )
        fields: dict[str, Any] = {}
        if settings is not None:
            fields = {name: getattr(settings, name) for name in settings.model_fields_set}
        planned = fields.get("max_tokens")
        if planned is None:
            defaults = getattr(self.model, "settings", None)  # HTTP models have defaults
            planned = defaults.max_tokens if isinstance(defaults, ModelSettings) else None
        if planned is not None and planned <= left:
            return settings
        return ModelSettings(**{**fields, "max_tokens": left})

    # --- tool calls ---------------------------------------------------------------------------

    def _unique(self, run: _Run, calls: list[ToolCall]) -> list[ToolCall]:
        """The calls with ids unique in the run (models repeat ids, or leave them out)."""
        out = calls
        for i, call in enumerate(calls):
            if not call.id or call.id in run.seen_ids:
                if out is calls:
                    out = list(calls)
                call = out[i] = call.model_copy(
                    update={"id": f"call_{random.getrandbits(96):024x}"}
                )
            run.seen_ids.add(call.id)
        return out

    def _cap_calls(self, run: _Run, calls: list[ToolCall]) -> tuple[list[ToolCall], str]:
        """The calls of a new reply that run (at most ``max_tool_calls_per_step``), and the note
        that tells the model about the others (empty when none was left out)."""
        cap = self.max_tool_calls_per_step
        if len(calls) <= cap:
            return calls, ""
        _log.warning(
            "run %s: the model made %d tool calls in one reply; only the first %d run "
            "(max_tool_calls_per_step), the other %d are left out of the transcript",
            run.run_id, len(calls), cap, len(calls) - cap,
        )  # fmt: skip
        names = ", ".join(sorted({call.name for call in calls[cap:]}))
        if len(names) > 200:
            names = names[:200] + "..."
        note = (
            f"Your last reply made {len(calls)} tool calls; only the first {cap} ran (at most "
            f"{cap} run per reply). The other {len(calls) - cap} did not run (calls to: "
            f"{names}). Call again, in later replies, the ones you still need."
        )
        return calls[:cap], note

    def _beyond_cap(self, run: _Run, calls: list[ToolCall]) -> list[ToolResult | None]:
        """One slot per call: ``None`` for calls to run, an error result for the calls past
        ``max_tool_calls_per_step`` (they are answered, so the transcript stays valid)."""
        results: list[ToolResult | None] = [None] * len(calls)
        cap = self.max_tool_calls_per_step
        if len(calls) > cap:
            _log.warning(
                "run %s: the model made %d tool calls in one reply; only the first %d run "
                "(max_tool_calls_per_step), the others are answered with an error",
                run.run_id, len(calls), cap,
            )  # fmt: skip
            skipped = _error_result(
                f"Not run: your reply made {len(calls)} tool calls and only the first {cap} "
                "run per reply. Call this tool again if you still need it."
            )
            results[cap:] = [skipped] * (len(calls) - cap)
        return results

    def _groups(self, calls: list[ToolCall]) -> list[list[int]]:
        """Indices of the calls, grouped: a sequential tool alone, others together in order."""
        if len(calls) == 1:
            return [[0]]
        groups: list[list[int]] = []
        batch: list[int] = []
        for i, call in enumerate(calls):
            tool = self._tools.get(call.name)
            if tool is not None and tool.sequential:
                if batch:
                    groups.append(batch)
                    batch = []
                groups.append([i])
            else:
                batch.append(i)
        if batch:
            groups.append(batch)
        return groups

    async def _run_group(
        self, run: _Run, calls: list[ToolCall], group: list[int], results: list[ToolResult | None]
    ) -> None:
        """Run one group of calls, concurrently (up to ``max_tool_concurrency``)."""
        if len(group) == 1:
            results[group[0]] = await self._call_tool(run, calls[group[0]])
            return
        limit = self.max_tool_concurrency
        gate = asyncio.Semaphore(limit) if limit is not None and limit < len(group) else None

        async def one(i: int) -> BaseException | None:
            try:
                if gate is None:
                    results[i] = await self._call_tool(run, calls[i])
                else:
                    async with gate:
                        results[i] = await self._call_tool(run, calls[i])
            except (KeyboardInterrupt, SystemExit) as exc:
                # Raised in a task of its own, these would stop the event loop on the spot;
                # raised from the run's task, the transcript goes with them.
                return exc
            return None

        outcomes = await asyncio.gather(*(one(i) for i in group), return_exceptions=True)
        for outcome in outcomes:  # every call has finished; now raise the first failure
            if isinstance(outcome, BaseException):
                raise outcome

    def _call_tool(self, run: _Run, call: ToolCall) -> Awaitable[ToolResult]:
        """Run one call, between the tool hooks when there are any (without hooks, the call's
        own coroutine is handed back: no extra frame per call)."""
        if run.hooks is None:
            return self._answer_call(run, call)
        return run.hooks.tool(self._answer_call, run, call)

    async def _answer_call(self, run: _Run, call: ToolCall) -> ToolResult:
        """Run one call. Failures become error results; only ``on_tool_error="raise"`` raises."""
        started = time.perf_counter()
        run.tool_calls += 1
        tool = self._tools.get(call.name)
        key, repeated = run.repeats.check(call) if run.repeats is not None else (None, None)
        if repeated is not None:  # answered before in this run: the same result, with a note
            result = repeated
            run.failures.pop(call.name, None)  # a success, as far as the retry budget goes
        elif tool is None:
            names = ", ".join(self._tools) or "none"
            error: ToolError = UnknownToolError(
                f"There is no tool named {call.name!r}. Available tools: {names}.",
                tool_name=call.name,
                available=list(self._tools),
            )
            result = self._failed(run, call.name, self.retries, str(error))
        elif call.arguments_error is not None:  # unreadable arguments: not run, the model is told
            result = self._failed(
                run,
                call.name,
                self.retries if tool.max_retries is None else tool.max_retries,
                f"Invalid arguments for tool '{call.name}': {call.arguments_error}. Call "
                f"{call.name} again with one JSON object of its arguments "
                f"({', '.join(tool.parameters['properties']) or 'none: send {}'}).",
            )
        elif (tool.requires_approval or self.approve_all) and not await self._approved(call):
            result = _error_result(
                f"The user did not approve this call to {call.name}. Do not repeat it; "
                "go on without it or say what you need."
            )
        else:
            context: ToolContext[Any] = ToolContext(
                deps=run.deps,
                run_id=run.run_id,
                messages=run.messages,
                tool_call_id=call.id,
                tool_name=call.name,
                step=run.steps,
                idempotency_key=f"{run.run_id}:{call.id}",
            )
            budget = self.retries if tool.max_retries is None else tool.max_retries
            try:
                result = await self._run_tool(tool, call, context)
                run.failures.pop(call.name, None)
            except ToolExecutionError as exc:
                # KeyboardInterrupt, SystemExit... from a tool end this run (and only this one).
                if self.on_tool_error == "raise" or not isinstance(exc.original, Exception):
                    raise
                result = self._failed(run, call.name, budget, str(exc))
            except ToolError as exc:  # bad arguments, a timeout, or raised by the tool on purpose
                result = self._failed(run, call.name, budget, str(exc))
            finally:
                nested = context.usage  # agents used as tools report their usage here
                if nested.requests or nested.total_tokens or nested.tool_calls:
                    run.add(nested)
                    run.requests += nested.requests
                    run.tool_calls += nested.tool_calls
            content = result.content
            if len(content) > self.max_tool_output_chars:
                result = result.model_copy(
                    update={"content": _cut(content, self.max_tool_output_chars)}
                )
            if run.repeats is not None:
                run.repeats.remember(key, call, result)
        if _log.isEnabledFor(_DEBUG):
            _log.debug(
                "run %s tool %s (%s): %s in %.1f ms, %d chars",
                run.run_id, call.name, call.id, "error" if result.is_error else "ok",
                (time.perf_counter() - started) * 1000, len(result.content),
            )  # fmt: skip
        return result

    async def _run_tool(self, tool: Tool, call: ToolCall, context: ToolContext[Any]) -> ToolResult:
        """Run one call of a known tool (durable execution records it as a step)."""
        return await tool.run(call.arguments, context)

    def _check_deps(self, deps: Any) -> None:
        """With ``deps_type`` set, a run whose tools take a ``ToolContext`` needs fitting deps."""
        needing = [t.name for t in self.tools if t.takes_context]
        if not needing:
            return
        expected = self.deps_type
        wanted = getattr(expected, "__name__", repr(expected))
        if deps is None:
            raise ConfigurationError(
                f"this agent declares deps_type={wanted} and its tool(s) {', '.join(needing)} "
                f"take a ToolContext, but the run got no deps: pass deps={wanted}(...) to "
                "run(), run_sync() or stream()"
            )
        try:
            fits = isinstance(deps, get_origin(expected) or expected)  # type: ignore[arg-type]
        except TypeError:  # a type isinstance cannot check (a Protocol, a TypedDict...)
            return
        if not fits:
            raise ConfigurationError(
                f"this agent declares deps_type={wanted}, but the run got deps of type "
                f"{type(deps).__name__}; pass a {wanted} as deps="
            )

    def _failed(self, run: _Run, name: str, budget: int, text: str) -> ToolResult:
        """An error result for the model, counted against the tool's retry budget."""
        failures = run.failures[name] = run.failures.get(name, 0) + 1
        if failures > budget and run.exhausted is None:
            run.exhausted = (
                name,
                f"tool {name!r} failed {failures} times in a row (max_retries={budget}); "
                f"last error: {text[:500]}",
            )
        return _error_result(text)

    async def _approved(self, call: ToolCall) -> bool:
        if self.approve is None:
            _log.warning(
                "call to %s needs approval but the agent has no approve callback", call.name
            )
            return False
        try:
            verdict = self.approve(call)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except ToolApprovalDenied:
            return False
        return bool(verdict)

    def _record(self, run: _Run, calls: list[ToolCall], results: list[ToolResult | None]) -> None:
        """Append one tool message per answered call, in call order."""
        append = run.messages.append
        for call, result in zip(calls, results, strict=True):
            if result is not None:
                append(_message("tool", result.content, None, call.id, call.name, result.is_error))


# --- small helpers ---------------------------------------------------------------------------


def _message(
    role: Literal["system", "user", "assistant", "tool"],
    content: str,
    tool_calls: list[ToolCall] | None = None,
    tool_call_id: str | None = None,
    name: str | None = None,
    is_error: bool = False,
) -> Message:
    """A message with every field given (pydantic's validating constructor is quicker than
    ``model_construct``, and quickest when no default has to be filled in)."""
    return Message(
        role=role,
        content=content,
        tool_calls=[] if tool_calls is None else tool_calls,
        tool_call_id=tool_call_id,
        name=name,
        is_error=is_error,
    )


async def _final(events: AsyncIterator[AgentEvent]) -> RunResult[Any]:
    """The result a run's events end with."""
    result: RunResult[Any] | None = None
    async for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    assert result is not None  # iter() always ends with RunFinished or raises
    return result


def _join(first: str, second: str) -> str:
    return f"{first}\n\n{second}" if first and second else first or second


def _schema_instructions(output: TypeAdapter[Any]) -> str:
    schema = json.dumps(output.json_schema(), separators=(",", ":"))
    return f"Give your final answer as one JSON value matching this JSON schema, with no other text:\n{schema}"


def _model_settings(settings: Any) -> ModelSettings | None:
    """``settings`` as :class:`ModelSettings` (a dict is validated into one), or ``None``."""
    if settings is None or isinstance(settings, ModelSettings):
        return settings
    if isinstance(settings, Mapping):
        if not all(isinstance(key, str) for key in settings):
            raise ConfigurationError(
                f"settings keys must be setting names; allowed: {', '.join(ModelSettings.model_fields)}"
            )
        return ModelSettings(**settings)  # raises ConfigurationError naming the bad value
    raise ConfigurationError(
        f"settings must be a ModelSettings or a dict of its fields, got {type(settings).__name__}"
    )


def _error_result(text: str) -> ToolResult:
    return ToolResult(content=text, value=None, is_error=True, tool_call_id=None, name=None)


def _as_messages(prompt: str | Message | Sequence[Message] | None) -> list[Message]:
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [_message("user", prompt)]
    if isinstance(prompt, Message):
        return [prompt]
    return list(prompt)


def _unanswered_calls(messages: list[Message]) -> list[ToolCall]:
    """The calls of the last assistant turn that have no tool message yet (for resuming)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role == "tool":
            continue
        if message.role == "assistant" and message.tool_calls:
            answered = {m.tool_call_id for m in messages[index + 1 :]}
            return [call for call in message.tool_calls if call.id not in answered]
        return []
    return []


def _cut(content: str, limit: int) -> str:
    note = f"\n[output cut: showing the first {limit} of {len(content)} characters]"
    return content[: limit - len(note)] + note


def _parse_json(text: str) -> Any:
    """The JSON value in an answer: bare, in a fenced block, or the first one inside prose.

    Nesting too deep to parse is a ``ValueError`` (:class:`~agentkit._json.JSONNestingError`),
    like any other unreadable answer; the search inside prose gives up after a few attempts.
    """
    nesting: JSONNestingError | None = None
    try:
        return json_loads(text.strip())
    except JSONNestingError as exc:
        nesting = exc
    except ValueError:
        pass
    for match in _FENCE.finditer(text):
        try:
            return json_loads(match.group(1))
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    attempts = _MAX_JSON_ATTEMPTS
    for opener in "{[":
        start = text.find(opener)
        while start != -1 and attempts > 0:
            attempts -= 1
            try:
                return decoder.raw_decode(text, start)[0]
            except RecursionError:
                nesting = JSONNestingError(_NESTING)
                break  # every later opener is inside the same deep nest
            except ValueError:
                start = text.find(opener, start + 1)
    raise nesting or ValueError("the answer contains no JSON value")


def _describe_output_error(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors()[:5]
        ]
        return "; ".join(parts)
    return str(exc)


def _tool_name(name: str | None) -> str | None:
    if not name:
        return None
    return re.sub(r"\W+", "_", name).strip("_") or None
