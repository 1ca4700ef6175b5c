"""OpenTelemetry traces of agent runs, named and shaped by the GenAI semantic conventions.

Needs ``pip install "agentkit[otel]"`` (the OpenTelemetry API only; the SDK and exporters are
the application's choice). Nothing here is imported until tracing is switched on, with
``Agent(..., instrument=True)`` or for every agent with :func:`instrument`.

One run gives this tree::

    invoke_agent {agent name}          INTERNAL   the whole run
    ├── chat {model}                   CLIENT     one model request, its retries included
    ├── execute_tool {tool name}       INTERNAL   one per tool call (parallel calls overlap)
    └── chat {model} ...

The attribute names are defined below, in agentkit, rather than taken from the
``opentelemetry-semantic-conventions`` package: the GenAI conventions are still in
development and moving between packages. They follow :data:`CONVENTIONS`.

Message and argument contents are recorded only with ``include_content=True``. The API token
is never recorded: it lives in the HTTP headers, which no span sees, and model errors are
recorded with messages from which agentkit has removed it.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "agentkit tracing needs the OpenTelemetry API: pip install 'agentkit[otel]'"
    ) from exc

from . import __version__, hooks
from ._retries import retry_listener
from .errors import ConfigurationError
from .hooks import HookSet, RunInfo
from .messages import Message, ModelResponse, ToolCall, ToolResult
from .settings import ModelSettings

__all__ = [
    "CONVENTIONS",
    "Instrumentation",
    "TracingHooks",
    "instrument",
    "uninstrument",
]

#: The conventions these spans follow.
CONVENTIONS = (
    "OpenTelemetry semantic conventions for generative AI (development status), "
    "as of semantic-conventions v1.41 / open-telemetry/semantic-conventions-genai"
)
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"

# --- attribute names -----------------------------------------------------------------------

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_DESCRIPTION = "gen_ai.agent.description"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
# The part of the input tokens served from the provider's prompt cache (set only when reported).
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
# agentkit's own (no convention covers them)
AGENTKIT_RUN_ID = "agentkit.run.id"
AGENTKIT_RUN_STEPS = "agentkit.run.steps"
AGENTKIT_REQUEST_RETRIES = "agentkit.request.retries"
AGENTKIT_REQUEST_REPETITION_PENALTY = "agentkit.request.repetition_penalty"
AGENTKIT_RETRY_EVENT = "agentkit.retry"
AGENTKIT_RETRY_ATTEMPT = "agentkit.retry.attempt"

_NOT_YET = object()

#: ``error.type`` of a tool call whose failure went back to the model as an error result.
TOOL_ERROR = "tool_error"

_SAMPLING = {
    "max_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": GEN_AI_REQUEST_TEMPERATURE,
    "top_p": GEN_AI_REQUEST_TOP_P,
    "top_k": GEN_AI_REQUEST_TOP_K,
    "seed": GEN_AI_REQUEST_SEED,
    "frequency_penalty": GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": GEN_AI_REQUEST_PRESENCE_PENALTY,
    "repetition_penalty": AGENTKIT_REQUEST_REPETITION_PENALTY,
}

#: ``gen_ai.provider.name`` per backend class (a model may also set ``provider_name``).
PROVIDERS = {
    "WorkersAI": "cloudflare.workers_ai",
    "OpenAICompatible": "openai",
    "ScriptedModel": "agentkit.scripted",
    "FunctionModel": "agentkit.function",
}


# --- switching it on -----------------------------------------------------------------------


class Instrumentation:
    """How to trace: which tracer provider (``None``: the global one), and whether message
    and tool-argument contents go into spans (``include_content``; off by default)."""

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, include_content: bool = False
    ) -> None:
        self.tracer_provider = tracer_provider
        self.include_content = include_content
        self.tracer = trace.get_tracer(
            "agentkit", __version__, tracer_provider=tracer_provider, schema_url=SCHEMA_URL
        )

    def __repr__(self) -> str:
        return (
            f"Instrumentation(tracer_provider={self.tracer_provider!r}, "
            f"include_content={self.include_content})"
        )


def instrument(
    tracer_provider: TracerProvider | None = None, *, include_content: bool = False
) -> Instrumentation:
    """Trace every agent (except those built with ``instrument=False``) from now on."""
    settings = Instrumentation(tracer_provider, include_content=include_content)
    hooks.global_tracing = HookSet([TracingHooks(settings)])
    return settings


def uninstrument() -> None:
    """Stop what :func:`instrument` started (agents built with ``instrument=True`` go on)."""
    hooks.global_tracing = None


def tracing_hooks(instrument: Instrumentation | None) -> TracingHooks:
    """The hook object for ``Agent(instrument=...)``."""
    if instrument is None:
        return TracingHooks(Instrumentation())
    if not isinstance(instrument, Instrumentation):
        raise ConfigurationError(
            f"instrument must be True, False, None or an agentkit.tracing.Instrumentation, "
            f"got {instrument!r}"
        )
    return TracingHooks(instrument)


# --- the spans -----------------------------------------------------------------------------


class _RunSpans:
    __slots__ = (
        "base",
        "chat",
        "chat_token",
        "listener_token",
        "retries",
        "sampled",
        "span",
        "tools",
    )

    def __init__(self, span: Span, base: dict[str, Any]) -> None:
        self.span = span
        self.base = base  # attributes every chat span of the run carries
        self.sampled: tuple[object, dict[str, Any]] = (_NOT_YET, {})
        self.chat: Span | None = None
        self.chat_token: object | None = None
        self.listener_token: Any = None
        self.retries = 0
        self.tools: dict[str, tuple[Span, object]] = {}

    def on_retry(self, attempt: int, error: BaseException) -> None:
        self.retries += 1
        if self.chat is not None:
            self.chat.add_event(
                AGENTKIT_RETRY_EVENT,
                {AGENTKIT_RETRY_ATTEMPT: attempt, ERROR_TYPE: _error_type(error)},
            )


class TracingHooks:
    """The hook object that turns a run's hooks into spans (see the module docstring)."""

    def __init__(self, settings: Instrumentation) -> None:
        self.settings = settings
        self._tracer = settings.tracer
        self._content = settings.include_content
        self._runs: weakref.WeakKeyDictionary[RunInfo, _RunSpans] = weakref.WeakKeyDictionary()

    def on_run_start(self, run: RunInfo) -> None:
        agent = run.agent
        model = agent.model
        name = agent.name
        common: dict[str, Any] = {
            GEN_AI_PROVIDER_NAME: provider_name(model),
            GEN_AI_REQUEST_MODEL: model.model_name,
            GEN_AI_CONVERSATION_ID: run.conversation_id,
            **_server(model),
        }
        attributes = {GEN_AI_OPERATION_NAME: "invoke_agent", **common, AGENTKIT_RUN_ID: run.run_id}
        if name:
            attributes[GEN_AI_AGENT_NAME] = name
        if agent.description:
            attributes[GEN_AI_AGENT_DESCRIPTION] = agent.description
        span = self._tracer.start_span(
            f"invoke_agent {name}" if name else "invoke_agent",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        base = {GEN_AI_OPERATION_NAME: "chat", **common, GEN_AI_REQUEST_STREAM: run.stream}
        self._runs[run] = _RunSpans(span, base)

    def on_model_start(self, run: RunInfo, messages: Sequence[Message]) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        settings, sampled = state.sampled
        if settings is not run.settings:  # the same settings object for most requests
            sampled = _sampling(run.agent.model, run.settings)
            state.sampled = (run.settings, sampled)
        attributes = {**state.base, **sampled}
        if self._content:
            attributes[GEN_AI_INPUT_MESSAGES] = _json([_message_parts(m) for m in messages])
        chat = self._tracer.start_span(
            f"chat {attributes[GEN_AI_REQUEST_MODEL]}",
            context=trace.set_span_in_context(state.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        state.chat = chat
        state.retries = 0
        state.listener_token = retry_listener.set(state.on_retry)
        # A request (not a stream) is awaited whole: its HTTP spans can nest under it. A stream
        # hands events to the caller in between, so its span is never made current.
        if not run.stream:
            state.chat_token = otel_context.attach(trace.set_span_in_context(chat))

    def on_model_end(
        self, run: RunInfo, response: ModelResponse | None, error: BaseException | None
    ) -> None:
        state = self._runs.get(run)
        if state is None or state.chat is None:
            return
        chat, state.chat = state.chat, None
        _reset(retry_listener, state.listener_token)
        state.listener_token = None
        if state.chat_token is not None:
            otel_context.detach(state.chat_token)  # type: ignore[arg-type]
            state.chat_token = None
        found: dict[str, Any] = {AGENTKIT_REQUEST_RETRIES: state.retries}
        if response is not None:
            usage = response.usage
            found[GEN_AI_USAGE_INPUT_TOKENS] = usage.prompt_tokens
            found[GEN_AI_USAGE_OUTPUT_TOKENS] = usage.completion_tokens
            if usage.cached_tokens:
                found[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
            if response.finish_reason:
                found[GEN_AI_RESPONSE_FINISH_REASONS] = [response.finish_reason]
            if response.model_name:
                found[GEN_AI_RESPONSE_MODEL] = response.model_name
            if self._content:
                found[GEN_AI_OUTPUT_MESSAGES] = _json([_output_parts(response)])
        chat.set_attributes(found)
        if error is not None:
            _fail(chat, error)
        chat.end()

    def on_tool_start(self, run: RunInfo, call: ToolCall) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        attributes: dict[str, Any] = {
            GEN_AI_OPERATION_NAME: "execute_tool",
            GEN_AI_TOOL_NAME: call.name,
            GEN_AI_TOOL_CALL_ID: call.id,
            GEN_AI_TOOL_TYPE: "function",
        }
        if self._content:
            attributes[GEN_AI_TOOL_CALL_ARGUMENTS] = _json(call.arguments)
        span = self._tracer.start_span(
            f"execute_tool {call.name}",
            context=trace.set_span_in_context(state.span),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        # The call runs inside one coroutine: the tool's own spans (and a nested agent's run)
        # become children of this one.
        state.tools[call.id] = (span, otel_context.attach(trace.set_span_in_context(span)))

    def on_tool_end(
        self,
        run: RunInfo,
        call: ToolCall,
        result: ToolResult | None,
        error: BaseException | None,
    ) -> None:
        state = self._runs.get(run)
        opened = state.tools.pop(call.id, None) if state is not None else None
        if opened is None:
            return
        span, token = opened
        otel_context.detach(token)  # type: ignore[arg-type]
        if result is not None:
            if self._content:
                span.set_attribute(GEN_AI_TOOL_CALL_RESULT, result.content)
            if result.is_error:
                span.set_attribute(ERROR_TYPE, TOOL_ERROR)
                span.set_status(
                    Status(StatusCode.ERROR, result.content[:500] if self._content else None)
                )
        if error is not None:
            _fail(span, error, describe=self._content)
        span.end()

    def on_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
        state = self._runs.pop(run, None)
        if state is None:
            return
        span = state.span
        usage = run.usage
        span.set_attributes(
            {
                GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
                GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
                AGENTKIT_RUN_STEPS: run.step,
            }
        )
        if usage.cached_tokens:
            span.set_attribute(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cached_tokens)
        if error is not None:
            _fail(span, error)
        span.end()


# --- helpers -------------------------------------------------------------------------------


def provider_name(model: Any) -> str:
    """``gen_ai.provider.name`` for a model: its ``provider_name``, or by its class."""
    own = getattr(model, "provider_name", None)
    if isinstance(own, str) and own:
        return own
    for cls in type(model).__mro__:
        found = PROVIDERS.get(cls.__name__)
        if found is not None:
            return found
    return type(model).__name__.lower()


def _server(model: Any) -> dict[str, Any]:
    base_url = getattr(model, "base_url", None)
    if not isinstance(base_url, str):
        return {}
    try:
        parts = urlsplit(base_url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    found: dict[str, Any] = {SERVER_ADDRESS: parts.hostname}
    if port:
        found[SERVER_PORT] = port
    return found


def _sampling(model: Any, settings: ModelSettings | None) -> dict[str, Any]:
    defaults = getattr(model, "settings", None)
    if isinstance(defaults, ModelSettings):
        settings = defaults.merge(settings)
    if settings is None:
        return {}
    return {
        _SAMPLING[name]: value for name, value in settings.to_request().items() if name in _SAMPLING
    }


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__


def _fail(span: Span, error: BaseException, *, describe: bool = True) -> None:
    span.set_attribute(ERROR_TYPE, _error_type(error))
    if describe:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
    else:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def _reset(var: Any, token: Any) -> None:
    if token is None:
        return
    try:
        var.reset(token)
    except ValueError:  # reset from another context (a stream closed elsewhere)
        var.set(None)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _message_parts(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        part: dict[str, Any] = {
            "type": "tool_call_response",
            "id": message.tool_call_id,
            "result": message.content,
        }
        return {"role": "tool", "parts": [part]}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "content": message.content})
    for call in message.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return {"role": message.role, "parts": parts}


def _output_parts(response: ModelResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append({"type": "text", "content": response.text})
    for call in response.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return {"role": "assistant", "parts": parts, "finish_reason": response.finish_reason or ""}
