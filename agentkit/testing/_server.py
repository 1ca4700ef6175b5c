"""A real local HTTP server that speaks the Workers AI and OpenAI wire formats, for tests.

:class:`WireServer` listens on ``127.0.0.1`` (a free port) in a background thread and answers
model requests with replies you script: text, tool calls in either wire shape, tool calls
written as text, and faults (error statuses with Cloudflare codes and ``retry-after``, dropped
connections, stalls, truncated streams, invalid JSON, a wrong content type, latency). It streams
(server-sent events) when the request says ``"stream": true``. It records every request and
checks every Workers AI request body against the model's input JSON Schema (with
``jsonschema`` when it is installed, else with a small built-in checker: see
:mod:`agentkit.testing._schema_check`).

Routes::

    POST /accounts/{account_id}/ai/run/{model}              Workers AI
    POST /v1/{account_id}/{gateway}/workers-ai/{model}      Workers AI through AI Gateway
    POST /accounts/{account_id}/ai/v1/chat/completions      OpenAI-compatible (Workers AI)
    POST /v1/chat/completions                               OpenAI-compatible

Example::

    from agentkit import Message
    from agentkit.models import WorkersAI
    from agentkit.testing import Reply, WireServer

    with WireServer([Reply.error(429, code=3040, retry_after=0), "Paris."]) as server:
        model = WorkersAI(account_id="acct", api_token="t", base_url=server.base_url)
        response = model.request_sync([Message.user("Capital of France?")], [])
        assert response.text == "Paris."
        assert len(server.requests) == 2 and not server.violations

Replies are taken from the queue (``WireServer(replies)`` / :meth:`WireServer.add`) first,
then from ``handler(request)`` if given, then ``default``. A plain string is a text answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from ..messages import ToolCall
from ._schema_check import schema_violations

__all__ = ["Reply", "WireRequest", "WireServer"]

Fault = Literal[
    "drop", "drop_stream", "truncate", "invalid_json", "wrong_content_type", "stall_stream"
]
CallShape = Literal["openai", "legacy"]
CallSpec = ToolCall | Mapping[str, Any] | tuple[str, Mapping[str, Any]]
ReplyLike = "Reply | str"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Reply:
    """One scripted reply. Build it with the class methods, or set the fields directly.

    - ``text`` / ``tool_calls``: the answer. Calls are :class:`ToolCall`, ``(name, args)`` or a
      wire dict sent as is; ``call_shape`` picks ``"openai"`` (``{id, type, function}``, the
      newer Workers AI shape) or ``"legacy"`` (``{name, arguments}``, Workers AI only).
    - ``status`` >= 400 sends an error envelope with ``error_code`` / ``error_message`` and
      the ``retry_after`` (seconds) / ``retry_after_ms`` headers when set.
    - ``fault``: ``"drop"`` (close without answering), ``"drop_stream"`` (close mid-stream
      after ``after_events`` events), ``"truncate"`` (end the body early: a stream without
      ``[DONE]`` after ``after_events`` events, or a short JSON body), ``"invalid_json"``,
      ``"wrong_content_type"`` (an HTML page), ``"stall_stream"`` (pause ``stall`` seconds
      after ``after_events`` events, then finish).
    - ``delay``: seconds to wait before answering (latency, or a stall past the client timeout).
    - ``chunk_chars``: characters per streamed text delta; ``write_size``: cut the streamed
      bytes into writes of this many bytes (to exercise event boundaries).
    - ``body`` / ``events``: raw JSON body, or raw stream events (``[DONE]`` is added unless
      ``done=False``), sent instead of the generated ones.
    - ``stream``: ``None`` streams when the request asks to; ``False`` answers a streamed
      request with a plain JSON body (as servers that ignore ``stream`` do).
    """

    text: str | None = None
    tool_calls: Sequence[CallSpec] = ()
    call_shape: CallShape = "openai"
    usage: Mapping[str, int] | None = None
    finish_reason: str | None = None
    status: int = 200
    error_code: int | None = None
    error_message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    fault: Fault | None = None
    delay: float = 0.0
    stall: float = 0.0
    after_events: int = 1
    chunk_chars: int = 8
    write_size: int | None = None
    body: Any = None
    events: Sequence[Any] | None = None
    done: bool = True
    stream: bool | None = None

    @classmethod
    def answer(cls, text: str, **fields: Any) -> Reply:
        """A text answer."""
        return cls(text=text, **fields)

    @classmethod
    def calls(
        cls, *calls: CallSpec, shape: CallShape = "openai", text: str | None = None, **fields: Any
    ) -> Reply:
        """Structured tool calls, each a :class:`ToolCall`, ``(name, args)`` or a wire dict."""
        return cls(text=text, tool_calls=calls, call_shape=shape, **fields)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        **fields: Any,
    ) -> Reply:
        """An error status with a Cloudflare-style envelope (or an OpenAI ``error`` object)."""
        return cls(
            status=status,
            error_code=code,
            error_message=message,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            **fields,
        )

    @classmethod
    def drop(cls) -> Reply:
        """Close the connection without answering."""
        return cls(fault="drop")

    @classmethod
    def stalled(cls, seconds: float, text: str = "late") -> Reply:
        """Answer only after ``seconds`` (past a client's timeout, usually)."""
        return cls(text=text, delay=seconds)

    @classmethod
    def truncated(cls, text: str = "partial answer", *, after_events: int = 1) -> Reply:
        """A reply cut short: a stream without ``[DONE]``, or a JSON body missing its end."""
        return cls(text=text, fault="truncate", after_events=after_events)

    @classmethod
    def invalid_json(cls) -> Reply:
        """A 200 reply whose body (or stream event) is not valid JSON."""
        return cls(fault="invalid_json")

    @classmethod
    def wrong_content_type(cls) -> Reply:
        """A 200 reply with an HTML page, as a misconfigured proxy would send."""
        return cls(fault="wrong_content_type")


@dataclass
class WireRequest:
    """One request as the server received it (the ``authorization`` header is not kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    api: Literal["workers-ai", "openai", "unknown"]
    model: str | None
    stream: bool
    authorized: bool

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The ``messages`` of the body ([] for prompt requests)."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            messages: list[dict[str, Any]] = body["messages"]
            return messages
        return []


class WireServer:
    """A scripted Workers AI / OpenAI-compatible HTTP/1.1 server on ``127.0.0.1``.

    - ``replies``: queued replies (:class:`Reply` or a plain string answer), used first.
    - ``handler``: ``handler(request) -> Reply | str | None`` decides when the queue is empty
      (``None`` falls through to ``default``). It runs in the server thread.
    - ``default``: the reply when nothing else applies; without one, an unscripted request gets
      a 500 error that says so.
    - ``api_token``: when set, requests without ``Authorization: Bearer <api_token>`` get 401
      (Cloudflare code 10000).
    - ``validate``: check each Workers AI body against the input schema into
      :attr:`violations`; ``record``: keep every request in :attr:`requests`. Turn both off
      for benchmarks.

    Use it as a context manager (``with`` or ``async with``); :attr:`base_url` goes to
    ``WorkersAI(base_url=...)`` and :attr:`openai_base_url` to ``OpenAICompatible(base_url=...)``.

    After requests: :attr:`requests` (one :class:`WireRequest` each), :attr:`violations`
    (schema problems, ``"<method> <path>: <where>: <what>"``), :attr:`connections` (TCP
    connections accepted: keep-alive reuse shows here) and :attr:`pending` (queued replies left).
    A handler that raises answers 500 (code 9999) instead of killing the server; so does a
    reply the server fails to build (the failure is also kept in :attr:`violations`).
    """

    def __init__(
        self,
        replies: Iterable[Reply | str] = (),
        *,
        handler: Callable[[WireRequest], Reply | str | None] | None = None,
        default: Reply | str | None = None,
        api_token: str | None = None,
        validate: bool = True,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._queue: collections.deque[Reply | str] = collections.deque(replies)
        self.handler = handler
        self.default = default
        self.api_token = api_token
        self.validate = validate
        self.record = record
        self.requests: list[WireRequest] = []
        self.violations: list[str] = []
        self.connections = 0
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counter = 0

    # scripting

    def add(self, *replies: Reply | str) -> None:
        """Queue more replies."""
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued replies are left."""
        return len(self._queue)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and violations."""
        self._queue.clear()
        self.requests.clear()
        self.violations.clear()

    # addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the WireServer is not started: use it as a context manager")
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The API root for ``WorkersAI(base_url=...)``."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The API root for ``OpenAICompatible(base_url=...)``: ``<url>/v1``."""
        return self.url + "/v1"

    # lifetime

    def start(self) -> Self:
        """Start listening (in a background thread). Returns the server."""
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="agentkit-wire-server", daemon=True
        )
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
        future.result(timeout=10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, backlog=4096)
        self._port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop listening, drop open connections and end the thread."""
        loop = self._loop
        if loop is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        self._loop = None
        self._thread = None
        self._server = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    break
                request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
                method, _, rest = request_line.partition(" ")
                target = rest.rpartition(" ")[0] or rest
                headers: dict[str, str] = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                try:
                    body = await self._read_body(reader, headers)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    break
                try:
                    keep_open = await self._respond(method, target, headers, body, writer)
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a bug or a malformed Reply: say so, do not just hang up
                    keep_open = await self._report_failure(method, target, exc, writer)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _report_failure(
        self, method: str, target: str, exc: Exception, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer 500 (code 9999) naming what failed, and keep it in :attr:`violations`."""
        path = target.split("?", 1)[0]
        problem = f"the WireServer failed to answer: {exc!r}"
        self.violations.append(f"{method} {path}: {problem}")
        body = {
            "success": False,
            "errors": [{"code": 9999, "message": problem}],
            "messages": [],
            "result": None,
        }
        if writer.is_closing():
            return False
        return await self._send(writer, 500, json.dumps(body).encode(), "application/json")

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = int(headers.get("content-length") or 0)
        return await reader.readexactly(length) if length else b""

    def _describe(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> WireRequest:
        path = target.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model: str | None = None
        api: Literal["workers-ai", "openai", "unknown"] = "unknown"
        if path.endswith("/chat/completions"):
            api = "openai"
            model = body.get("model") if isinstance(body, dict) else None
        elif "/ai/run/" in path:
            api, model = "workers-ai", path.split("/ai/run/", 1)[1]
        elif "/workers-ai/" in path:
            api, model = "workers-ai", path.split("/workers-ai/", 1)[1]
        authorization = headers.pop("authorization", None)
        authorized = self.api_token is None or authorization == f"Bearer {self.api_token}"
        stream = isinstance(body, dict) and body.get("stream") is True
        return WireRequest(method, path, headers, body, raw, api, model, stream, authorized)

    def _check(self, request: WireRequest) -> None:
        where = f"{request.method} {request.path}"
        if request.body is None:
            self.violations.append(f"{where}: the body is not JSON")
            return
        if request.api == "workers-ai":
            for problem in schema_violations(request.body):
                self.violations.append(f"{where}: {problem}")
        elif request.api == "openai":
            for index, message in enumerate(request.messages):
                if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                    self.violations.append(f"{where}: messages[{index}].content is not a string")

    def _choose(self, request: WireRequest) -> Reply:
        reply: Reply | str | None = None
        if self._queue:
            with contextlib.suppress(IndexError):
                reply = self._queue.popleft()
        if reply is None and self.handler is not None:
            reply = self.handler(request)
        if reply is None:
            reply = self.default
        if reply is None:
            return Reply.error(
                500,
                code=9999,
                message="WireServer: no reply scripted for this request (queue empty, no handler or default)",
            )
        return Reply(text=reply) if isinstance(reply, str) else reply

    async def _respond(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        request = self._describe(method, target, headers, raw)
        if self.record:
            self.requests.append(request)
        if self.validate and request.api != "unknown":
            try:
                self._check(request)
            except Exception as exc:  # a broken check is reported, never a dropped connection
                where = f"{request.method} {request.path}"
                self.violations.append(f"{where}: the schema check failed: {exc!r}")
        if request.api == "unknown":
            reply = Reply.error(404, code=7003, message=f"No route for that URI: {request.path}")
        elif not request.authorized:
            reply = Reply.error(401, code=10000, message="Authentication error")
        else:
            try:
                reply = self._choose(request)
            except Exception as exc:  # a failing handler is a 500, not a dead server
                reply = Reply.error(500, code=9999, message=f"WireServer handler raised {exc!r}")
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        fault = reply.fault
        if fault == "drop":
            writer.transport.abort()
            return False
        if fault == "invalid_json":
            if request.stream:
                return await self._send_stream(writer, [b'{"response": "Hel'], reply, done=True)
            return await self._send(
                writer, 200, b'{"result": {"response": "Hel', "application/json"
            )
        if fault == "wrong_content_type":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return await self._send(writer, 200, page, "text/html; charset=utf-8")
        if reply.status >= 400:
            return await self._send_error(writer, request, reply)
        if request.stream and reply.stream is not False:
            return await self._send_stream(
                writer, self._stream_events(request, reply), reply, done=reply.done
            )
        body = reply.body if reply.body is not None else self._whole(request, reply)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if fault == "truncate":
            head = self._head(200, "application/json", len(data), reply.headers)
            writer.write(head + data[: len(data) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        return await self._send(writer, 200, data, "application/json", reply.headers)

    # building replies

    def _next_id(self) -> str:
        self._counter += 1
        return f"chatcmpl-tool-{self._counter:06d}"

    def _wire_calls(self, reply: Reply, *, indexed: bool) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        for position, spec in enumerate(reply.tool_calls):
            if isinstance(spec, ToolCall):
                call_id, name, args = spec.id, spec.name, dict(spec.arguments)
            elif isinstance(spec, tuple):
                call_id, name, args = self._next_id(), spec[0], dict(spec[1])
            else:
                calls.append(dict(spec))
                continue
            if reply.call_shape == "legacy":
                calls.append({"name": name, "arguments": args})
            else:
                item: dict[str, Any] = {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                if indexed:
                    item["index"] = position
                calls.append(item)
        return calls

    @staticmethod
    def _usage(reply: Reply) -> dict[str, int]:
        if reply.usage is not None:
            return dict(reply.usage)
        completion = len((reply.text or "").split()) + 8 * len(reply.tool_calls) + 1
        return {
            "prompt_tokens": 20,
            "completion_tokens": completion,
            "total_tokens": 20 + completion,
        }

    def _whole(self, request: WireRequest, reply: Reply) -> dict[str, Any]:
        calls = self._wire_calls(reply, indexed=False)
        if request.api == "openai":
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if calls:
                message["tool_calls"] = calls
            finish = reply.finish_reason or ("tool_calls" if calls else "stop")
            return {
                "id": "chatcmpl-wire",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": self._usage(reply),
            }
        result: dict[str, Any] = {"response": reply.text, "usage": self._usage(reply)}
        if calls:
            result["tool_calls"] = calls
        if reply.finish_reason:
            result["finish_reason"] = reply.finish_reason
        return {"result": result, "success": True, "errors": [], "messages": []}

    def _stream_events(self, request: WireRequest, reply: Reply) -> list[Any]:
        if reply.events is not None:
            return list(reply.events)
        size = max(1, reply.chunk_chars)
        text = reply.text or ""
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        calls = self._wire_calls(reply, indexed=True)
        usage = self._usage(reply)
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        events: list[Any] = []
        if request.api == "openai":
            base = {
                "id": "chatcmpl-wire",
                "object": "chat.completion.chunk",
                "model": request.model,
            }

            def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
                choice = {"index": 0, "delta": delta, "finish_reason": reason}
                return {**base, "choices": [choice]}

            events.append(chunk({"role": "assistant", "content": ""}))
            events.extend(chunk({"content": piece}) for piece in pieces)
            events.extend(chunk({"tool_calls": part}) for part in _fragments(calls, size))
            events.append(chunk({}, finish))
            events.append({**base, "choices": [], "usage": usage})
            return events
        events.extend({"response": piece, "p": "abcdef"} for piece in pieces)
        if reply.call_shape == "legacy":
            events.extend({"response": "", "tool_calls": [call]} for call in calls)
        else:
            events.extend({"response": "", "tool_calls": part} for part in _fragments(calls, size))
        events.append({"response": "", "tool_calls": [], "p": "abc"})
        events.append({"response": "", "usage": usage, "finish_reason": finish})
        return events

    # writing

    @staticmethod
    def _head(
        status: int,
        content_type: str,
        length: int | None,
        extra: Mapping[str, str] = {},
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"content-type: {content_type}",
        ]
        if length is None:
            lines.append("transfer-encoding: chunked")
            lines.append("cache-control: no-cache")
        else:
            lines.append(f"content-length: {length}")
        lines.extend(f"{name}: {value}" for name, value in extra.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        data: bytes,
        content_type: str,
        extra: Mapping[str, str] = {},
    ) -> bool:
        writer.write(self._head(status, content_type, len(data), extra) + data)
        await writer.drain()
        return True

    async def _send_error(
        self, writer: asyncio.StreamWriter, request: WireRequest, reply: Reply
    ) -> bool:
        code = reply.error_code
        text = reply.error_message or _REASONS.get(reply.status, "Error")
        if request.api == "openai":
            body: dict[str, Any] = {
                "error": {
                    "message": text,
                    "type": "error",
                    "code": code if code is not None else None,
                }
            }
        else:
            body = {
                "success": False,
                "errors": [{"code": code if code is not None else reply.status, "message": text}],
                "messages": [],
                "result": None,
            }
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["retry-after"] = _number(reply.retry_after)
        if reply.retry_after_ms is not None:
            headers["retry-after-ms"] = _number(reply.retry_after_ms)
        return await self._send(
            writer, reply.status, json.dumps(body).encode(), "application/json", headers
        )

    async def _send_stream(
        self, writer: asyncio.StreamWriter, events: Sequence[Any], reply: Reply, *, done: bool
    ) -> bool:
        fault = reply.fault
        # Encoded before anything is written: an event that cannot be sent fails the reply whole.
        encoded = [
            b"data: "
            + (e if isinstance(e, bytes) else (e if isinstance(e, str) else json.dumps(e)).encode())
            + b"\n\n"
            for e in events
        ]
        writer.write(self._head(200, "text/event-stream", None, reply.headers))
        cut = reply.after_events
        if fault in ("truncate", "drop_stream"):
            encoded = encoded[:cut]
        elif done:
            encoded.append(b"data: [DONE]\n\n")
        if fault == "stall_stream":
            await self._write_chunks(writer, encoded[:cut], reply.write_size)
            await asyncio.sleep(reply.stall)
            encoded = encoded[cut:]
        await self._write_chunks(writer, encoded, reply.write_size)
        if fault == "drop_stream":
            writer.transport.abort()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _write_chunks(
        writer: asyncio.StreamWriter, encoded: list[bytes], size: int | None
    ) -> None:
        if size:
            data = b"".join(encoded)
            for start in range(0, len(data), size):
                piece = data[start : start + size]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            return
        writer.write(b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in encoded))
        await writer.drain()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _fragments(calls: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Streamed tool-call pieces: a head with id and name, then argument slices, per call."""
    parts: list[list[dict[str, Any]]] = []
    for position, call in enumerate(calls):
        function = call.get("function")
        if not isinstance(function, dict):
            parts.append([call])
            continue
        index = call.get("index", position)
        parts.append(
            [
                {
                    "id": call.get("id"),
                    "type": "function",
                    "index": index,
                    "function": {"name": function.get("name")},
                }
            ]
        )
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        step = max(1, size)
        for start in range(0, len(arguments), step):
            parts.append(
                [{"index": index, "function": {"arguments": arguments[start : start + step]}}]
            )
    return parts
