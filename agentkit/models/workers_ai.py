"""Cloudflare Workers AI over its REST API (``/accounts/{account_id}/ai/run/{model}``)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

import httpx

from .._sync import run_sync
from ..errors import ConfigurationError, MissingCredentialsError, ModelResponseError
from ..messages import Message, ModelEvent, ModelResponse
from ..settings import ModelSettings
from ._base_http import MAX_CONTENT_CHARS, HTTPModel
from ._body import DEFAULT_MAX_RESPONSE_BYTES
from ._errors_map import Hints, error_from_response
from ._ratelimit import RateLimit
from ._redact import clean_token, snippet
from ._retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_MAX_RETRIES
from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._textcalls import call_as_text
from ._transport import DEFAULT_TIMEOUT, check_base_url, shown_url
from .openai import OpenAICompatible

if TYPE_CHECKING:
    from ..tools import Tool

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "GATEWAY_BASE_URL", "WorkersAI"]

DEFAULT_MODEL = "@cf/meta/llama-3.2-3b-instruct"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
GATEWAY_BASE_URL = "https://gateway.ai.cloudflare.com/v1"

ToolStyle = Literal["function", "flat"]

_HINTS = Hints(
    provider="Cloudflare",
    auth=(
        "Check that CLOUDFLARE_API_TOKEN (or api_token=) is a valid API token with "
        "Workers AI permissions, and that it has not expired."
    ),
    permission=(
        "The token lacks permission: give it 'Workers AI: Read' and 'Workers AI: Edit' for "
        "this account, and check CLOUDFLARE_ACCOUNT_ID."
    ),
    not_found=(
        "Check the model name (for example @cf/meta/llama-3.2-3b-instruct) and "
        "CLOUDFLARE_ACCOUNT_ID (the account id, not the zone id)."
    ),
)


class WorkersAI(HTTPModel):
    """A Workers AI text-generation model, by default ``@cf/meta/llama-3.2-3b-instruct``.

    Credentials come from the arguments or the environment: ``CLOUDFLARE_ACCOUNT_ID`` and
    ``CLOUDFLARE_API_TOKEN`` (or ``CLOUDFLARE_AUTH_TOKEN``). Missing ones raise
    :class:`~agentkit.errors.MissingCredentialsError` at the first request, naming the variables.

    - ``base_url``: API root (default ``CLOUDFLARE_API_BASE_URL`` or
      ``https://api.cloudflare.com/client/v4``); ``gateway="name"`` routes through AI Gateway
      instead (``gateway_base_url`` to change its host).
    - ``timeout`` (seconds per read), ``deadline`` (seconds for a whole call, retries included;
      default five times ``timeout``), ``max_retries`` (retries after the first attempt),
      ``backoff_base`` / ``backoff_max`` (exponential backoff with jitter, in seconds).
    - ``max_response_bytes`` / ``max_event_bytes``: caps on a reply's decoded size and on one
      streamed event (32 MiB and 16 MiB by default).
    - ``rate_limit``: requests per minute (e.g. ``300``, the account default) or a
      :class:`~agentkit.models.RateLimit`; requests are spaced client-side.
    - ``http_client``: your own :class:`httpx.AsyncClient` (never closed by this object).
    - ``tool_style``: ``"function"`` (``{type, function: {...}}``) or ``"flat"`` tool definitions.
    - ``settings``: default :class:`~agentkit.settings.ModelSettings` for every request.
    - ``recover_text_calls``: recover tool calls the model wrote as text (on by default).
    - ``session_affinity``: ``True`` (the default) sends ``x-session-affinity`` with one key per
      run (the run id, or the key of a :func:`~agentkit.session_affinity` block), so a run's
      requests reach the replica holding its cached prompt prefix; a string sends that key on
      every request; ``False`` sends none.

    Use it as a context manager (``with`` / ``async with``) or call ``close()`` / ``aclose()``
    to release pooled connections.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | None = None,
        gateway_base_url: str = GATEWAY_BASE_URL,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        rate_limit: RateLimit | float | None = None,
        http_client: httpx.AsyncClient | None = None,
        tool_style: ToolStyle = "function",
        settings: ModelSettings | None = None,
        headers: Mapping[str, str] | None = None,
        recover_text_calls: bool = True,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        limits: httpx.Limits | None = None,
        session_affinity: bool | str = True,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if tool_style not in ("function", "flat"):
            raise ConfigurationError(f"tool_style must be 'function' or 'flat', got {tool_style!r}")
        if not model:
            raise ConfigurationError("model must be a Workers AI model name, e.g. " + DEFAULT_MODEL)
        self._account_id = (
            account_id or os.environ.get("CLOUDFLARE_ACCOUNT_ID") or ""
        ).strip() or None
        token = (
            clean_token(api_token, "api_token")
            or clean_token(os.environ.get("CLOUDFLARE_API_TOKEN"), "CLOUDFLARE_API_TOKEN")
            or clean_token(os.environ.get("CLOUDFLARE_AUTH_TOKEN"), "CLOUDFLARE_AUTH_TOKEN")
        )
        self._token = token
        if base_url:
            self._base_url = check_base_url(base_url, "base_url")
        elif os.environ.get("CLOUDFLARE_API_BASE_URL"):
            self._base_url = check_base_url(
                os.environ["CLOUDFLARE_API_BASE_URL"], "CLOUDFLARE_API_BASE_URL"
            )
        else:
            self._base_url = DEFAULT_BASE_URL
        self._gateway = gateway
        self._gateway_base_url = check_base_url(gateway_base_url, "gateway_base_url")
        _check_settings(settings)
        self._tool_style: ToolStyle = tool_style
        self._extra_headers = dict(headers or {})
        self._options: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "backoff_base": backoff_base,
            "backoff_max": backoff_max,
            "http_client": http_client,
            "limits": limits,
            "deadline": deadline,
            "max_response_bytes": max_response_bytes,
            "max_event_bytes": max_event_bytes,
            "settings": settings,
            "recover_text_calls": recover_text_calls,
            "session_affinity": session_affinity,
        }
        self._init_http(
            model,
            token=token,
            headers=self._extra_headers,
            settings=settings,
            recover_text_calls=recover_text_calls,
            hints=_HINTS,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rate_limit=rate_limit,
            http_client=http_client,
            limits=limits,
            deadline=deadline,
            max_response_bytes=max_response_bytes,
            max_event_bytes=max_event_bytes,
        )
        self._set_session_affinity(session_affinity)
        self._endpoint: httpx.URL | None = None
        if self._account_id and token:
            if gateway:
                url = f"{self._gateway_base_url}/{self._account_id}/{gateway}/workers-ai/{model}"
            else:
                url = f"{self._base_url}/accounts/{self._account_id}/ai/run/{model}"
            self._endpoint = httpx.URL(url)

    @property
    def account_id(self) -> str | None:
        """The Cloudflare account id in use (not secret)."""
        return self._account_id

    @property
    def base_url(self) -> str:
        """The API root (``gateway`` requests go to ``gateway_base_url`` instead)."""
        return self._base_url

    def __repr__(self) -> str:
        token = "set" if self._token else "missing"
        gateway = f", gateway={self._gateway!r}" if self._gateway else ""
        return (
            f"WorkersAI(model={self._model!r}, account_id={self._account_id!r}, "
            f"base_url={shown_url(self._base_url)!r}{gateway}, api_token={token})"
        )

    def _url(self) -> httpx.URL:
        if self._endpoint is None:
            missing = []
            if not self._account_id:
                missing.append("the account id (account_id= or CLOUDFLARE_ACCOUNT_ID)")
            if not self._token:
                missing.append(
                    "an API token (api_token= or CLOUDFLARE_API_TOKEN, or CLOUDFLARE_AUTH_TOKEN)"
                )
            raise MissingCredentialsError(
                "Workers AI needs " + " and ".join(missing) + ". Create a token with "
                "'Workers AI' permissions in the Cloudflare dashboard (My Profile > API Tokens) "
                "and export CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN."
            )
        return self._endpoint

    # translation to the Workers AI wire

    def _fields(self, settings: ModelSettings | None) -> dict[str, Any]:
        _check_settings(settings)
        return super()._fields(settings)

    def _tool_definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return [_complete_definition(tool.definition(self._tool_style)) for tool in tools]

    _wire_format = "workers-ai"

    def _wire_message(
        self, message: Message, messages: Sequence[Message], index: int
    ) -> dict[str, Any]:
        role = message.role
        if role == "assistant" and message.tool_calls:
            calls_text = "\n".join(call_as_text(call) for call in message.tool_calls)
            content = f"{message.content}\n{calls_text}" if message.content else calls_text
            wire_calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in message.tool_calls
            ]
            return {"role": "assistant", "content": content, "tool_calls": wire_calls}
        if role == "tool":
            call_id = message.tool_call_id or ""
            return {
                "role": "tool",
                "name": message.name or _call_name(messages, index, call_id),
                "tool_call_id": call_id,
                "content": message.content or "",
            }
        return {"role": role, "content": message.content or ""}

    def _reply_parts(self, data: Any) -> tuple[Any, Any, Any, Any]:
        if not isinstance(data, dict):
            raise ModelResponseError(
                f"{self._model}: expected a JSON object from Workers AI, "
                f"got {snippet(str(data), self._transport.secret, 200)!r}"
            )
        if data.get("success") is False:
            raise error_from_response(
                200,
                {},
                json.dumps(data).encode(),
                model_name=self._model,
                hints=_HINTS,
                secret=self._transport.secret,
            )
        result = data.get("result")
        if result is None:
            found = "no result" if "result" not in data else "a null result"
            raise ModelResponseError(
                f"{self._model}: the reply has {found}; Workers AI answers "
                '{"success": true, "result": {...}}. The server sent: '
                f"{snippet(json.dumps(data, ensure_ascii=False), self._transport.secret, 200)!r}"
            )
        if not isinstance(result, dict):
            return result, None, None, None  # a bare value: the answer itself
        if "choices" in result:
            # Newer models answer with an OpenAI chat.completion object inside "result".
            choices = result["choices"]
            choice = choices[0] if isinstance(choices, list) and choices else None
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(choice, dict) or not isinstance(message, dict):
                raise self._no_answer(data, "choices[0] with a message")
            return (
                message.get("content"),
                message.get("tool_calls"),
                result.get("usage"),
                choice.get("finish_reason"),
            )
        return (
            result.get("response"),
            result.get("tool_calls"),
            result.get("usage"),
            result.get("finish_reason"),
        )

    def _no_answer(self, data: Any, expected: str) -> ModelResponseError:
        """The error for an OpenAI-shaped ``result`` that holds no answer at all."""
        return ModelResponseError(
            f"{self._model}: the reply's result holds no {expected}, so no answer; Workers AI "
            'answers {"success": true, "result": {"response": ...}}. The server sent: '
            f"{snippet(json.dumps(data, ensure_ascii=False), self._transport.secret, 200)!r}"
        )

    # prompt mode

    async def complete(
        self,
        prompt: str,
        *,
        raw: bool = False,
        lora: str | None = None,
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Generate from a bare ``prompt`` (the schema's Prompt shape).

        ``raw=True`` skips the chat template (you format the prompt yourself); ``lora`` names a
        LoRA adapter to apply.
        """
        fields = self._prompt_fields(prompt, raw, lora, settings)
        body = self._body(fields, (), False)
        headers = self._affinity_headers()
        return await self._send(body, (), fields.get("max_tokens"), (), headers)

    def complete_sync(
        self,
        prompt: str,
        *,
        raw: bool = False,
        lora: str | None = None,
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """:meth:`complete` for synchronous code."""
        return run_sync(self.complete(prompt, raw=raw, lora=lora, settings=settings))

    async def complete_stream(
        self,
        prompt: str,
        *,
        raw: bool = False,
        lora: str | None = None,
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        """:meth:`complete`, streamed: the events of :meth:`stream` (``TextDelta`` as text
        arrives, then one ``ResponseDone`` with the whole reply and its usage)."""
        fields = self._prompt_fields(prompt, raw, lora, settings)
        body = self._body(fields, (), True)
        headers = self._affinity_headers()
        events = self._stream_body(body, (), fields.get("max_tokens"), (), headers)
        async with aclosing(events):
            async for event in events:
                yield event

    def _prompt_fields(
        self, prompt: str, raw: bool, lora: str | None, settings: ModelSettings | None
    ) -> dict[str, Any]:
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= MAX_CONTENT_CHARS:
            length = len(prompt) if isinstance(prompt, str) else type(prompt).__name__
            raise ConfigurationError(
                f"prompt must be a string of 1 to {MAX_CONTENT_CHARS} characters, got {length}"
            )
        if lora is not None and (not isinstance(lora, str) or not lora):
            raise ConfigurationError(f"lora must be the name of a LoRA adapter, got {lora!r}")
        fields: dict[str, Any] = {"prompt": prompt, **self._fields(settings)}
        if raw:
            fields["raw"] = True
        if lora is not None:
            fields["lora"] = lora
        return fields

    # the OpenAI-compatible endpoint

    def openai(self) -> OpenAICompatible:
        """The same model through Workers AI's OpenAI-compatible ``/ai/v1`` endpoint.

        Shares credentials, settings, retry policy and the rate limit object with this one.
        """
        self._url()  # credentials check, with the same message
        return OpenAICompatible(
            self._model,
            base_url=f"{self._base_url}/accounts/{self._account_id}/ai/v1",
            api_key=self._token,
            rate_limit=self._transport.rate_limit,
            headers=self._extra_headers,
            _hints=_HINTS,
            **self._options,
        )


def _call_name(messages: Sequence[Message], index: int, call_id: str) -> str:
    """The tool name of call ``call_id`` in an earlier assistant turn ("" if none has it)."""
    for earlier in reversed(messages[:index]):
        for call in earlier.tool_calls:
            if call.id == call_id:
                return call.name
    return ""


_WORKERS_AI_RANGES = {
    "frequency_penalty": (0.0, 2.0),
    "presence_penalty": (0.0, 2.0),
}
"""Settings whose Workers AI range is narrower than the one :class:`ModelSettings` allows."""


def _check_settings(settings: ModelSettings | None) -> None:
    """Refuse settings outside the ranges of the Workers AI text-generation schema."""
    if settings is None:
        return
    for name, (low, high) in _WORKERS_AI_RANGES.items():
        value = getattr(settings, name)
        if value is not None and not low <= value <= high:
            raise ConfigurationError(
                f"{name}={value!r} is outside the range Workers AI accepts ({low:g} to "
                f"{high:g}); OpenAI-compatible servers accept -2 to 2."
            )


def _complete_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """A tool definition with what the Workers AI schema requires of every parameter.

    Each property needs a ``type`` (a string) and a ``description``; missing ones are filled
    in (the first non-null type of a union; the property name as description).
    """
    function = definition.get("function")
    if isinstance(function, dict):
        return {
            **definition,
            "function": {**function, "parameters": _complete(function.get("parameters"))},
        }
    return {**definition, "parameters": _complete(definition.get("parameters"))}


def _complete(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict):
        return {"type": "object", "properties": {}}
    out = dict(parameters)
    if not isinstance(out.get("type"), str):
        out["type"] = "object"
    properties = out.get("properties")
    if not isinstance(properties, dict):
        out["properties"] = {}
        return out
    fixed: dict[str, Any] = {}
    for name, spec in properties.items():
        item = dict(spec) if isinstance(spec, dict) else {}
        if not isinstance(item.get("type"), str):
            item["type"] = _type_of(item)
        if not isinstance(item.get("description"), str):
            item["description"] = str(name).replace("_", " ")
        fixed[name] = item
    out["properties"] = fixed
    return out


def _type_of(spec: dict[str, Any]) -> str:
    declared = spec.get("type")
    if isinstance(declared, list):
        for entry in declared:
            if isinstance(entry, str) and entry != "null":
                return entry
    for key in ("anyOf", "oneOf", "allOf"):
        options = spec.get(key)
        if isinstance(options, list):
            for option in options:
                if isinstance(option, dict):
                    kind = option.get("type")
                    if isinstance(kind, str) and kind != "null":
                        return kind
                    if "$ref" in option or "properties" in option:
                        return "object"
    if "$ref" in spec or "properties" in spec:
        return "object"
    if "items" in spec:
        return "array"
    return "string"
