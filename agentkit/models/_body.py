"""Reading a response body with a cap on its decoded size, checked while it is read.

gzip and deflate bodies are inflated here, a bounded piece at a time, so a small compressed body
that would unpack to gigabytes (a "gzip bomb") stops at the cap like any other body. agentkit asks
servers for those two encodings only (:data:`ACCEPT_ENCODING`); a body in another encoding is
decoded by httpx and capped per decoded piece.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import AsyncGenerator, Iterator

import httpx

from ..errors import ConfigurationError, ModelResponseError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "BodyTooLargeError",
    "body_chunks",
    "check_size_limit",
    "read_body",
]

ACCEPT_ENCODING = "gzip, deflate"
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_PIECE = 64 * 1024  # the most bytes inflated at once


class BodyTooLargeError(ModelResponseError):
    """A reply (or one event of a streamed reply) is larger than its configured cap."""


def check_size_limit(value: object, name: str) -> int:
    """``value`` as a size cap in bytes, or a :class:`ConfigurationError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive number of bytes, got {value!r}")
    return value


class _Inflater:
    """Inflates gzip or deflate data, at most :data:`_PIECE` bytes out per step."""

    __slots__ = ("_decoder", "_first", "_wbits")

    def __init__(self, encoding: str) -> None:
        self._wbits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._decoder = zlib.decompressobj(self._wbits)
        self._first = encoding == "deflate"  # "deflate" may come with or without its header

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._decoder.decompress(data, _PIECE)
            except zlib.error:
                if not self._first:
                    raise
                self._first = False
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._first = False
            if out:
                yield out
            if self._decoder.eof:
                data = self._decoder.unused_data  # another gzip member may follow
                if data:
                    self._decoder = zlib.decompressobj(self._wbits)
            else:
                data = self._decoder.unconsumed_tail

    def flush(self) -> bytes:
        return self._decoder.flush()


async def body_chunks(
    response: httpx.Response, limit: int, describe: str
) -> AsyncGenerator[bytes, None]:
    """The decoded body of ``response`` in pieces; :class:`BodyTooLargeError` past ``limit``.

    ``describe`` starts the error message (the model name, usually).
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    total = 0

    def count(piece: bytes) -> bytes:
        nonlocal total
        total += len(piece)
        if total > limit:
            raise BodyTooLargeError(
                f"{describe}: the reply is larger than max_response_bytes ({limit} bytes, "
                "decoded); it was not read further. A model's answer is far smaller: the server "
                "is misbehaving, or pass a larger max_response_bytes= if it is really needed."
            )
        return piece

    try:
        content = response.content  # read already (a mock transport's reply, say)
    except httpx.ResponseNotRead:
        pass
    else:
        if content:
            yield count(content)
        return
    if encoding in ("", "identity"):
        async for raw in response.aiter_raw():
            if raw:
                yield count(raw)
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
        try:
            async for raw in response.aiter_raw():
                for piece in inflater.feed(raw):
                    yield count(piece)
            tail = inflater.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {encoding} body could not be decoded: {exc}") from None
        if tail:
            yield count(tail)
    else:
        async for piece in response.aiter_bytes():
            if piece:
                yield count(piece)


async def read_body(
    response: httpx.Response, limit: int, describe: str, *, cut: bool = False
) -> bytes:
    """The whole decoded body, at most ``limit`` bytes.

    Past ``limit``: :class:`BodyTooLargeError`, or with ``cut=True`` the first ``limit`` bytes
    (enough to report an error reply).
    """
    parts = bytearray()
    # With cut=True nothing is too large: reading stops once ``limit`` bytes are in.
    pieces = body_chunks(response, sys.maxsize if cut else limit, describe)
    try:
        async for piece in pieces:
            parts += piece[: limit - len(parts)] if cut else piece
            if cut and len(parts) >= limit:
                break
    finally:
        await pieces.aclose()
    return bytes(parts)
