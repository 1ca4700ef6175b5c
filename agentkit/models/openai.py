"""OpenAI-compatible ``/chat/completions`` servers: Ollama, vLLM, llama.cpp, LM Studio, and
Workers AI's own ``/ai/v1`` endpoint (see :meth:`agentkit.models.WorkersAI.openai`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import ModelResponseError
from ..messages import Message
from ..settings import ModelSettings
from ._base_http import HTTPModel
from ._body import DEFAULT_MAX_RESPONSE_BYTES
from ._errors_map import Hints, error_from_response
from ._ratelimit import RateLimit
from ._redact import clean_token, snippet
from ._retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_MAX_RETRIES
from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._transport import DEFAULT_TIMEOUT, check_base_url, shown_url

if TYPE_CHECKING:
    from ..tools import Tool

__all__ = ["OpenAICompatible"]

_HINTS = Hints(
    provider="server",
    auth="Check api_key: the server refused it.",
    permission="The API key lacks permission for this model.",
    not_found="Check base_url (it usually ends in /v1) and the model name the server knows.",
)


class OpenAICompatible(HTTPModel):
    """A model behind an OpenAI-style ``POST {base_url}/chat/completions`` endpoint.

    ``base_url`` is the API root, usually ending in ``/v1`` (Ollama:
    ``http://localhost:11434/v1``, vLLM: ``http://localhost:8000/v1``, llama.cpp's server:
    ``http://localhost:8080/v1``, LM Studio: ``http://localhost:1234/v1``). ``api_key`` is sent as
    a bearer token when given. Tool calls the server leaves in the text are recovered
    (``recover_text_calls``). Retries, errors and ``rate_limit`` work as for
    :class:`~agentkit.models.WorkersAI`; ``stream_usage`` asks for token usage at the end of
    streams (``stream_options``), which some older servers do not accept. ``timeout``,
    ``deadline``, ``max_response_bytes`` and ``max_event_bytes`` are as for
    :class:`~agentkit.models.WorkersAI`. Sampling settings take the ranges OpenAI documents
    (``frequency_penalty`` and ``presence_penalty`` from -2 to 2).

    ``session_affinity`` (off by default here; on for :meth:`WorkersAI.openai`, whose endpoint
    uses it): ``True`` sends ``x-session-affinity`` with one key per run, a string sends that
    key on every request.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        rate_limit: RateLimit | float | None = None,
        http_client: httpx.AsyncClient | None = None,
        settings: ModelSettings | None = None,
        headers: Mapping[str, str] | None = None,
        stream_usage: bool = True,
        recover_text_calls: bool = True,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        limits: httpx.Limits | None = None,
        session_affinity: bool | str = False,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        _hints: Hints = _HINTS,
    ) -> None:
        self._base_url = check_base_url(base_url, "base_url")
        self._endpoint = httpx.URL(self._base_url + "/chat/completions")
        self._stream_usage = stream_usage
        self._init_http(
            model,
            token=clean_token(api_key, "api_key"),
            headers=headers,
            settings=settings,
            recover_text_calls=recover_text_calls,
            hints=_hints,
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

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    def __repr__(self) -> str:
        return f"OpenAICompatible(model={self._model!r}, base_url={shown_url(self._base_url)!r})"

    # translation

    def _url(self) -> httpx.URL:
        return self._endpoint

    def _extra_fields(self, stream: bool) -> dict[str, Any]:
        if stream and self._stream_usage:
            return {"model": self._model, "stream_options": {"include_usage": True}}
        return {"model": self._model}

    def _tool_definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return [tool.definition("function") for tool in tools]

    _wire_format = "openai"

    def _wire_message(
        self, message: Message, messages: Sequence[Message], index: int
    ) -> dict[str, Any]:
        role = message.role
        if role == "assistant" and message.tool_calls:
            return {
                "role": "assistant",
                "content": message.content or "",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": json.dumps(call.arguments, ensure_ascii=False),
                        },
                    }
                    for call in message.tool_calls
                ],
            }
        if role == "tool":
            return {
                "role": "tool",
                "tool_call_id": message.tool_call_id or "",
                "content": message.content or "",
            }
        return {"role": role, "content": message.content or ""}

    def _reply_parts(self, data: Any) -> tuple[Any, Any, Any, Any]:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if isinstance(data, dict) and "error" in data:
                raise error_from_response(
                    500,
                    {},
                    json.dumps(data).encode(),
                    model_name=self._model,
                    hints=self._transport.hints,
                    secret=self._transport.secret,
                )
            raise ModelResponseError(
                f"{self._model}: the reply has no choices[0]; expected an OpenAI chat completion, "
                f"got {snippet(str(data), self._transport.secret, 200)!r}. "
                "Check that base_url points at a /v1 chat API."
            )
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise ModelResponseError(
                f"{self._model}: the reply's choices[0] has no message, so no answer; got "
                f"{snippet(str(data), self._transport.secret, 200)!r}."
            )
        return (
            message.get("content"),
            message.get("tool_calls"),
            data.get("usage"),
            choice.get("finish_reason"),
        )
