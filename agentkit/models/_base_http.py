"""The common body of the HTTP model backends: request, stream (retried only before its first
event reaches the caller), sync twins, context managers. Subclasses translate messages, tools
and replies to and from their wire format."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Self

import httpx

from .._json import JSONNestingError, loads
from .._scope import check_affinity_key, current_scope
from .._sync import run_sync
from ..errors import ConfigurationError, ModelResponseError, StreamTruncatedError
from ..messages import Message, ModelEvent, ModelResponse, ResponseDone, TextDelta
from ..settings import ModelSettings
from ._body import ACCEPT_ENCODING, DEFAULT_MAX_RESPONSE_BYTES, check_size_limit
from ._errors_map import Hints, unreadable
from ._holdback import Holdback
from ._ratelimit import RateLimit
from ._redact import header_secrets, snippet
from ._sse import (
    DEFAULT_MAX_EVENT_BYTES,
    EventTooLargeError,
    ServerSentEvent,
    SSEDecoder,
    StreamAccumulator,
)
from ._textcalls import build_response
from ._transport import Transport

if TYPE_CHECKING:
    from types import TracebackType

    from ..tools import Tool

__all__ = ["AFFINITY_HEADER", "MAX_CONTENT_CHARS", "HTTPModel", "dumps", "finish_reason"]

MAX_CONTENT_CHARS = 131_072
AFFINITY_HEADER = "x-session-affinity"


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_FINISH_REASONS = {"model_length": "length"}
"""Provider words for a finish reason, and the word agentkit reports."""


def finish_reason(value: Any) -> Any:
    """``value`` in agentkit's words (Workers AI's ``"model_length"`` is ``"length"``)."""
    return _FINISH_REASONS.get(value, value) if isinstance(value, str) else value


def _cut_reply(content: str) -> str:
    """``content`` cut to :data:`MAX_CONTENT_CHARS`, with a note saying so."""
    note = f"\n[cut: the first {{}} of {len(content):,} characters]"
    keep = MAX_CONTENT_CHARS - len(note.format(f"{MAX_CONTENT_CHARS:,}"))
    return content[:keep] + note.format(f"{keep:,}")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (one encoder for all: ``json.dumps`` with options builds one per call)."""
    return _encode(value).encode()


class HTTPModel:
    """What every HTTP backend shares. Subclasses translate messages, tools and replies."""

    _transport: Transport
    _model: str
    _settings: ModelSettings
    _settings_fields: dict[str, Any]
    _recover: bool
    _session_affinity: bool | str = False
    _wire_format: str = ""

    def _init_http(
        self,
        model: str,
        *,
        token: str | None,
        headers: Mapping[str, str] | None,
        settings: ModelSettings | None,
        recover_text_calls: bool,
        hints: Hints,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        rate_limit: RateLimit | float | None,
        http_client: httpx.AsyncClient | None,
        limits: httpx.Limits | None,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        """Set up the transport (headers, bearer token, retries, pool) and the model fields.

        ``token`` must be clean already (:func:`~agentkit.models._redact.clean_token`).
        """
        sent = {
            "content-type": "application/json",
            "accept-encoding": ACCEPT_ENCODING,
            **(headers or {}),
        }
        secrets = tuple(one for one in (token, *header_secrets(headers)) if one)
        if token:
            sent["authorization"] = f"Bearer {token}"
        self._transport = Transport(
            headers=sent,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rate_limit=rate_limit,
            http_client=http_client,
            secret=secrets[0] if len(secrets) == 1 else (secrets or None),
            hints=hints,
            limits=limits,
            deadline=deadline,
            max_response_bytes=max_response_bytes,
        )
        self._max_event_bytes = check_size_limit(max_event_bytes, "max_event_bytes")
        self._init_model(model, settings, recover_text_calls)

    def _init_model(self, model: str, settings: ModelSettings | None, recover: bool) -> None:
        self._model = model
        self._settings = settings if settings is not None else ModelSettings()
        self._settings_fields = self._settings.to_request()
        self._recover = recover
        self._tools_cache: dict[tuple[int, ...], tuple[tuple[Any, ...], bytes]] = {}

    @property
    def model_name(self) -> str:
        """The model this backend sends requests to."""
        return self._model

    @property
    def settings(self) -> ModelSettings:
        """Default sampling settings, merged under the settings of each request."""
        return self._settings

    # hooks for subclasses

    def _url(self) -> httpx.URL:
        raise NotImplementedError

    def _wire_message(
        self, message: Message, messages: Sequence[Message], index: int
    ) -> dict[str, Any]:
        """``messages[index]`` (which is ``message``) in the wire format."""
        raise NotImplementedError

    def _wire_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        return [self._wire_message(m, messages, i) for i, m in enumerate(messages)]

    def _tool_definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _extra_fields(self, stream: bool) -> dict[str, Any]:
        return {}

    def _reply_parts(self, data: Any) -> tuple[Any, Any, Any, Any]:
        """``(text, raw_calls, usage, finish_reason)`` of a non-streamed reply."""
        raise NotImplementedError

    # request building

    def _fields(self, settings: ModelSettings | None) -> dict[str, Any]:
        if settings is None:
            return self._settings_fields
        return self._settings.merge(settings).to_request()

    def _tools_json(self, tools: Sequence[Tool]) -> bytes:
        if not tools:
            return b""
        key = tuple(map(id, tools))
        hit = self._tools_cache.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], tools, strict=True)):
            return hit[1]
        encoded = dumps(self._tool_definitions(tools))
        if len(self._tools_cache) >= 32:
            self._tools_cache.pop(next(iter(self._tools_cache)))
        self._tools_cache[key] = (tuple(tools), encoded)
        return encoded

    def _body(
        self,
        fields: dict[str, Any],
        tools: Sequence[Tool],
        stream: bool,
    ) -> bytes:
        body = dumps({**fields, **self._extra_fields(stream), "stream": stream})
        tools_json = self._tools_json(tools)
        if tools_json:
            body = body[:-1] + b',"tools":' + tools_json + b"}"
        return body

    def _messages_json(self, messages: Sequence[Message]) -> list[bytes]:
        """The messages as the items of a JSON array: each item's bytes, every one after the
        first with its leading comma, ready to be joined.

        Within a run (see ``agentkit._scope``) the items encoded so far are kept: when the
        messages start with the ones encoded last time (the same objects, or equal ones, in
        order), only the new ones are encoded. A step then costs the same at step 1,000 as at
        step 10, apart from copying the bytes, and earlier messages keep their exact bytes, so
        the prefix stays byte-stable for the provider's prompt cache.
        """
        run = current_scope()
        fmt = self._wire_format
        refs: list[Message] = []
        parts: list[bytes] = []
        kept = run.wire.get(fmt) if run is not None else None
        if kept is not None:
            head = messages[: len(kept[0])]
            # list == list checks identity first, element by element, in C.
            if isinstance(head, list) and head == kept[0]:
                refs, parts = kept
        for index in range(len(refs), len(messages)):
            item = self._wire_message(messages[index], messages, index)
            if len(item["content"]) > MAX_CONTENT_CHARS and item["role"] == "assistant":
                # The model's own earlier reply (an unusable answer, calls with huge
                # arguments): sent back cut, so that it cannot end the run; the transcript
                # keeps it whole.
                item["content"] = _cut_reply(item["content"])
            if len(item["content"]) > MAX_CONTENT_CHARS:
                raise ConfigurationError(
                    f"message {index} ({item['role']}) has {len(item['content'])} characters; "
                    f"at most {MAX_CONTENT_CHARS} are accepted per message. Shorten it "
                    "(for tool results, limit the tool output)."
                )
            encoded = dumps(item)
            parts.append(b"," + encoded if index else encoded)
            refs.append(messages[index])
        if run is not None:
            run.wire[fmt] = (refs, parts)
        return parts

    def _messages_body(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        settings: ModelSettings | None,
        stream: bool,
    ) -> tuple[bytes, int | None]:
        """The request body, laid out so consecutive requests of a run share a byte prefix:
        tool definitions, then the messages in order, then the settings."""
        fields = self._fields(settings)
        parts = self._messages_json(messages)
        tools_json = self._tools_json(tools)
        tail = dumps({**fields, **self._extra_fields(stream), "stream": stream})
        head = b'{"tools":' + tools_json + b',"messages":[' if tools_json else b'{"messages":['
        body = b"".join([head, *parts, b"],", tail[1:]])
        return body, fields.get("max_tokens")

    # session affinity

    def _set_session_affinity(self, setting: bool | str) -> None:
        if not isinstance(setting, bool):
            try:
                check_affinity_key(setting, "session_affinity key")
            except ValueError as exc:
                raise ConfigurationError(
                    f"{exc}; pass True (one key per run), False (none) or a key"
                ) from None
        self._session_affinity = setting

    def _affinity_headers(self) -> dict[str, str] | None:
        """``x-session-affinity`` for this request: the backend's fixed key, else the key of
        the run being served (its run id or a ``session_affinity`` block's key)."""
        setting = self._session_affinity
        if setting is False:
            return None
        if setting is True:
            run = current_scope()
            if run is None or not run.affinity_key:
                return None
            return {AFFINITY_HEADER: run.affinity_key}
        return {AFFINITY_HEADER: setting}

    def _response(
        self,
        data: Any,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message] = (),
    ) -> ModelResponse:
        text, calls, usage, finish = self._reply_parts(data)
        run = current_scope()
        return build_response(
            text=text,
            raw_calls=calls,
            usage=usage,
            finish_reason=finish_reason(finish),
            tools=tools,
            max_tokens=max_tokens,
            model_name=self._model,
            raw=data,
            recover=self._recover,
            history=() if run is not None else history,
            taken=run.seen_ids if run is not None else None,
        )

    # the Model protocol

    async def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send the conversation and return the whole reply (retried per the retry policy)."""
        body, max_tokens = self._messages_body(messages, tools, settings, False)
        return await self._send(body, tools, max_tokens, messages, self._affinity_headers())

    async def _send(
        self,
        body: bytes,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message] = (),
        headers: Mapping[str, str] | None = None,
    ) -> ModelResponse:
        url = self._url()
        transport = self._transport
        model = self._model

        end = transport.deadline_end()

        async def attempt() -> ModelResponse:
            data = await transport.post_json(url, body, model, end, headers)
            return self._response(data, tools, max_tokens, history)

        return await transport.retrying(attempt, end)

    def request_sync(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """:meth:`request` for synchronous code (works inside a running event loop too)."""
        return run_sync(self.request(messages, tools, settings))

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] = (),
        settings: ModelSettings | None = None,
    ) -> AsyncIterator[ModelEvent]:
        """Yield :class:`TextDelta` events as text arrives, then one :class:`ResponseDone`.

        Failures before the first event reaches the caller are retried like :meth:`request`;
        after that, an error ends the stream (a stream cut short raises
        :class:`~agentkit.errors.StreamTruncatedError`).
        """
        body, max_tokens = self._messages_body(messages, tools, settings, True)
        headers = self._affinity_headers()
        events = self._stream_body(body, tools, max_tokens, messages, headers)
        async with aclosing(events):
            async for event in events:
                yield event

    async def _stream_body(
        self,
        body: bytes,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message],
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[ModelEvent, None]:
        """Stream the reply to a ready request body (first event retried, as :meth:`stream`)."""
        events: AsyncGenerator[ModelEvent, None] | None = None
        end = self._transport.deadline_end()

        async def first_event() -> ModelEvent:
            nonlocal events
            gen = self._stream_once(body, tools, max_tokens, history, end, headers)
            try:
                event = await gen.__anext__()
            except BaseException:
                await gen.aclose()
                raise
            events = gen
            return event

        first = await self._transport.retrying(first_event, end)
        assert events is not None
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _stream_once(
        self,
        body: bytes,
        tools: Sequence[Tool],
        max_tokens: int | None,
        history: Sequence[Message],
        end: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[ModelEvent, None]:
        transport = self._transport
        model = self._model
        async with transport.open_stream(self._url(), body, model, end, headers) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                # A server that ignored "stream": read the whole reply instead.
                content = await transport.read(response, model, end)
                data = self._parse(content, content_type)
                whole = self._response(data, tools, max_tokens, history)
                if whole.text and not whole.tool_calls:
                    yield TextDelta(whole.text)
                yield ResponseDone(whole)
                return

            acc = StreamAccumulator()
            decoder = SSEDecoder(self._max_event_bytes)
            hold = Holdback(tools) if (tools and self._recover) else None
            count = 0
            done = False
            failure: BaseException | None = None
            chunks = transport.chunks(response, model, end)
            try:
                async for chunk in chunks:
                    for event in self._events(decoder, chunk):
                        count += 1
                        if event.data == "[DONE]":
                            done = True
                            break
                        delta = self._feed(acc, event.data, model, transport)
                        if delta:
                            if hold is not None:
                                delta = hold.push(delta)
                            if delta:
                                yield TextDelta(delta)
                    if done:
                        break
            except (httpx.HTTPError, OSError) as exc:  # the connection failed mid-stream
                failure = exc
            finally:
                await chunks.aclose()
            if failure is not None:
                raise transport.stream_error(failure, model, count) from failure
            if not done:
                for event in self._events(decoder, None):
                    if event.data == "[DONE]":
                        done = True
                        break
                    self._feed(acc, event.data, model, transport)
            if not done:
                raise StreamTruncatedError(
                    f"{model}: the stream ended after {count} events without [DONE]; "
                    "the reply is incomplete."
                )
        finish = finish_reason(acc.finish_reason)
        result = build_response(
            text=acc.text,
            raw_calls=acc.wire_calls(),
            usage=acc.usage,
            finish_reason=finish,
            tools=tools,
            max_tokens=max_tokens,
            model_name=model,
            raw={"stream": True, "usage": acc.usage, "finish_reason": acc.finish_reason},
            recover=self._recover,
            history=history,
        )
        if hold is not None and hold.held and not result.tool_calls:
            yield TextDelta(hold.release())
        yield ResponseDone(result)

    def _events(self, decoder: SSEDecoder, chunk: bytes | None) -> list[ServerSentEvent]:
        """The events ``chunk`` completes (``None``: the end of the stream)."""
        try:
            return decoder.feed(chunk) if chunk is not None else decoder.flush()
        except EventTooLargeError as exc:
            error = EventTooLargeError(f"{self._model}: {exc}")
        raise error

    def _parse(self, content: bytes, content_type: str | None) -> Any:
        """A whole reply's JSON; :class:`ModelResponseError` if it is not JSON (or nests too deep)."""
        try:
            return loads(content)
        except ValueError as exc:
            error = unreadable(self._model, content_type, content, self._transport.secret, exc)
        raise error

    def _feed(self, acc: StreamAccumulator, data: str, model: str, transport: Transport) -> str:
        try:
            chunk = loads(data)
        except ValueError as exc:
            why = "nests too deeply" if isinstance(exc, JSONNestingError) else "is not valid JSON"
            error = ModelResponseError(
                f"{model}: a stream event {why}: {snippet(data, transport.secret)!r}"
            )
        else:
            if (
                isinstance(chunk, dict)
                and "error" in chunk
                and not ("choices" in chunk or "response" in chunk)
            ):
                raise transport._error(500, {}, data.encode(), model)
            return acc.feed(chunk)
        raise error

    # lifetime

    async def aclose(self) -> None:
        """Close the pooled HTTP connections this model opened (a caller's client stays open)."""
        await self._transport.aclose()

    def close(self) -> None:
        """:meth:`aclose` for synchronous code."""
        run_sync(self._transport.aclose())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
