"""Server-sent events: an incremental reader, and the assembly of streamed model chunks.

:class:`SSEDecoder` turns bytes, cut anywhere (inside a line, inside a UTF-8 character,
between ``\\r`` and ``\\n``), into the same events as the whole stream would give.

:class:`StreamAccumulator` reads the decoded JSON chunks of both wire formats: Workers AI
(``{"response": ...}``, tool-call fragments keyed by ``index``, legacy whole calls, late
``usage`` / ``finish_reason``) and OpenAI (``choices[0].delta``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelResponseError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "EventTooLargeError",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamAccumulator",
    "aiter_sse",
]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
_EOL = re.compile(rb"\r\n|\r|\n")


class EventTooLargeError(ModelResponseError):
    """One event of a stream is larger than the decoder's ``max_event_bytes``."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event: its ``data`` lines joined by ``\\n``, and its ``event`` name (``""`` if none)."""

    data: str
    event: str = ""


class SSEDecoder:
    """Incremental SSE parser. Feed it byte chunks; it returns the events they complete.

    Lines end in ``\\n``, ``\\r\\n`` or a bare ``\\r`` (a line ending in ``\\r`` is complete at
    once; a ``\\n`` that follows it in the next chunk is skipped). Each byte is scanned once, so an
    endless line costs linear time. One event (its data lines, and a line still unfinished) may
    hold at most ``max_event_bytes`` bytes; past that, :class:`EventTooLargeError`.
    """

    __slots__ = ("_after_cr", "_buf", "_data", "_event", "_size", "max_event_bytes")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()  # the unfinished line
        self._after_cr = False  # the last line ended in "\r": skip a "\n" right after it
        self._data: list[str] = []
        self._size = 0  # bytes of the data lines of the event being read
        self._event = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add ``chunk`` and return the events completed by it (possibly none)."""
        events: list[ServerSentEvent] = []
        start = 0
        end = len(chunk)
        if self._after_cr and end:
            self._after_cr = False
            if chunk[:1] == b"\n":
                start = 1
        while start < end:
            match = _EOL.search(chunk, start)
            if match is None:
                self._buf += chunk[start:]
                self._check(len(self._buf))
                break
            stop = match.start()
            line: bytes | bytearray
            if self._buf:
                self._buf += chunk[start:stop]
                self._check(len(self._buf))
                line = self._buf  # (handed over, not copied)
                self._buf = bytearray()
            else:
                line = chunk[start:stop]
                self._check(len(line))
            self._line(line, events)
            start = match.end()
            if match.group() == b"\r" and start == end:
                self._after_cr = True
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: return what is left (a last event without its blank line counts)."""
        events: list[ServerSentEvent] = []
        if self._buf:
            line = self._buf
            self._buf = bytearray()
            self._line(line, events)
        self._line(b"", events)
        return events

    def _check(self, pending: int) -> None:
        if self._size + pending > self.max_event_bytes:
            raise EventTooLargeError(
                f"a stream event is larger than max_event_bytes ({self.max_event_bytes} bytes); "
                "it was not read further. Pass a larger max_event_bytes= if it is really needed."
            )

    def _line(self, line: bytes | bytearray, events: list[ServerSentEvent]) -> None:
        if not line:
            if self._data:
                events.append(ServerSentEvent("\n".join(self._data), self._event))
                self._data = []
            self._size = 0
            self._event = ""
            return
        if line[:1] == b":":
            return
        colon = line.find(b":")
        if colon < 0:
            name, start = line, len(line)
        else:
            name, start = line[:colon], colon + 1
            if line[start : start + 1] == b" ":
                start += 1
        if name == b"data":
            # (a view, not a slice: a long line is not copied again before it is decoded)
            self._data.append(str(memoryview(line)[start:], "utf-8", "replace"))
            self._size += len(line) - start + 1
        elif name == b"event":
            self._event = str(memoryview(line)[start:], "utf-8", "replace")
        # "id", "retry" and unknown fields are ignored.


async def aiter_sse(
    chunks: AsyncIterable[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[ServerSentEvent]:
    """The events of a byte stream, whatever its chunk boundaries."""
    decoder = SSEDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    arguments_obj: Any = None


class StreamAccumulator:
    """Collects streamed chunks of either wire format into text, tool calls, usage, finish reason.

    :meth:`feed` takes one decoded JSON chunk and returns its text delta (``""`` if none).
    After the stream, :meth:`wire_calls` gives the tool calls in wire shape, fragments joined.
    """

    __slots__ = ("_fragments", "_whole", "finish_reason", "text_parts", "usage")

    def __init__(self) -> None:
        self.text_parts: list[str] = []
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._fragments: dict[int, _PartialCall] = {}
        self._whole: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def feed(self, chunk: Any) -> str:
        if not isinstance(chunk, dict):
            return ""
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message")
                if not isinstance(delta, dict):
                    delta = {}
            text = delta.get("content")
            calls = delta.get("tool_calls")
            finish = choice.get("finish_reason")
        else:
            text = chunk.get("response")
            calls = chunk.get("tool_calls")
            finish = chunk.get("finish_reason")
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        if isinstance(finish, str) and finish:
            self.finish_reason = finish
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._add_call(call, position)
        if text is None or text == "":
            return ""
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        self.text_parts.append(text)
        return text

    def _add_call(self, call: dict[str, Any], position: int) -> None:
        index = call.get("index")
        if not isinstance(index, int):
            # No index: a whole call in one chunk (legacy {name, arguments} or a complete
            # {id, type, function} object).
            if call.get("name") or (
                isinstance(call.get("function"), dict) and call["function"].get("name")
            ):
                self._whole.append(call)
            return
        part = self._fragments.get(index)
        if part is None:
            part = self._fragments[index] = _PartialCall()
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id and part.id is None:
            part.id = call_id
        function = call.get("function")
        if not isinstance(function, dict):
            function = call  # fragments in legacy shape: {index, name, arguments}
        name = function.get("name")
        if isinstance(name, str) and name and not part.name:
            part.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            part.arguments.append(arguments)
        elif isinstance(arguments, dict):
            part.arguments_obj = arguments

    def wire_calls(self) -> list[dict[str, Any]]:
        """The streamed tool calls, in index order then arrival order, in wire shape."""
        calls: list[dict[str, Any]] = []
        for index in sorted(self._fragments):
            part = self._fragments[index]
            if not part.name:
                continue
            arguments: Any = part.arguments_obj
            if arguments is None:
                arguments = "".join(part.arguments)
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": arguments},
                }
            )
        calls.extend(self._whole)
        return calls
