"""A small HTTP/1.1 server on 127.0.0.1 whose handler writes whatever bytes it likes.

For replies no well-behaved server sends: endless lines, bare CR line endings on a kept-alive
connection, bodies dripped a byte at a time, compressed bombs. It runs its own event loop in a
thread (like :class:`agentkit.testing_server.WireServer`), records when each request arrived
(``arrivals``, in the server's clock) and checks every Workers AI body against the input schema
(``violations``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from agentkit.testing_server import schema_violations


@dataclass
class RawRequest:
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the reply; returns whether the connection stays open for another request."""


def head(status: int = 200, content_type: str = "application/json", **headers: str) -> bytes:
    """A response head; ``length=None`` is not set here: pass ``content_length`` or ``chunked``."""
    lines = [f"HTTP/1.1 {status} OK", f"content-type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.arrivals: list[float] = []
        self.requests: list[RawRequest] = []
        self.violations: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
            self._ready.set()
            loop.run_forever()
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        assert self._loop is not None
        self._loop.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw_head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.arrivals.append(time.monotonic())
                request_line, *lines = raw_head[:-4].decode("latin-1").split("\r\n")
                path = request_line.split(" ")[1]
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                parsed = json.loads(body) if body else None
                if "/ai/run/" in path:
                    self.violations += schema_violations(parsed)
                request = RawRequest(path, headers, parsed)
                self.requests.append(request)
                if not await self.handler(request, writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
