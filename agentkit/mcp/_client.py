"""``MCPTools``: the tools of one MCP server, as agentkit tools.

The connection lives in one task of its own (the *owner*), from ``connect()`` to ``aclose()``:
the SDK's transports are structured (their task groups must be left by the task that entered
them), and an owner task lets any task of the loop, or another loop, call tools meanwhile. The
sync form (``with MCPTools...``) runs the owner on agentkit's background loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import shlex
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypedDict, cast

import anyio
import mcp.types as mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError as SDKError
from pydantic import ValidationError
from typing_extensions import Unpack

from .._sync import run_sync
from ..errors import ConfigurationError, ToolExecutionError, ToolTimeoutError
from ._convert import parameters_for, tool_name
from ._errors import MCPConnectionError, MCPConnectionLost, MCPError, MCPProtocolError
from ._tool import MCPTool

__all__ = ["DEFAULT_CALL_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "MCPOptions", "MCPTools"]

logger = logging.getLogger("agentkit.mcp")

#: Seconds a tool call may take by default before the model is told it timed out.
DEFAULT_CALL_TIMEOUT = 60.0
#: Seconds to start (or reach) a server, finish the handshake and list its tools.
DEFAULT_CONNECT_TIMEOUT = 30.0

_CONNECTION_CLOSED = -32000
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$")
_STDERR_TAIL = 1500

Opener = Callable[[contextlib.AsyncExitStack], Awaitable[Any]]


class MCPOptions(TypedDict, total=False):
    """The options every ``MCPTools`` constructor takes (see :class:`MCPTools`)."""

    include: str | Sequence[str] | None
    exclude: str | Sequence[str] | None
    prefix: str | None
    timeout: float | None
    connect_timeout: float
    max_retries: int | None
    requires_approval: bool
    sequential: bool


def _patterns(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    items = tuple(value)
    if not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(
            f"{what} must be tool names or glob patterns (strings), got {value!r}"
        )
    return items


class MCPTools:
    """The tools of one MCP server, ready for an :class:`~agentkit.Agent`.

    Make one with :meth:`stdio`, :meth:`http` or :meth:`from_server`, then connect it::

        async with MCPTools.stdio("python", ["server.py"]) as docs:
            agent = Agent(model, [*docs, convert])

    Iterating gives ordinary :class:`~agentkit.Tool` objects (:class:`MCPTool`). The list is
    fetched once on connect and kept until the server says it changed (the refresh then runs
    in the background; ``await tools.refresh()`` waits for it). Synchronous code uses ``with``
    (or :meth:`connect_sync` / :meth:`close_sync`).

    Options (every constructor takes them):
        include, exclude: the server's own tool names or glob patterns (``"read_*"``), matched
            before any prefix; ``exclude`` wins.
        prefix: names become ``prefix_name`` (tells tools of two servers apart).
        timeout: seconds per call (``None``: no limit); a call past it is a tool error the model
            reads, and the server keeps running.
        connect_timeout: seconds to start or reach the server, finish the handshake and list.
        max_retries, requires_approval, sequential: as for :func:`agentkit.tool`, for every tool
            of the server.
    """

    def __init__(
        self,
        opener: Opener,
        server: str,
        *,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        prefix: str | None = None,
        timeout: float | None = DEFAULT_CALL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int | None = None,
        requires_approval: bool = False,
        sequential: bool = False,
    ) -> None:
        if prefix is not None and not _PREFIX.match(prefix):
            raise ConfigurationError(
                f"prefix must start with a letter or '_' and hold only letters, digits, '_' or "
                f"'-' (at most 41), got {prefix!r}"
            )
        for label, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ConfigurationError(
                    f"{label} must be a positive number of seconds, got {value!r}"
                )
        self._opener = opener
        self.server = server
        self.include = _patterns(include, "include")
        self.exclude = _patterns(exclude, "exclude") or ()
        self.prefix = prefix
        self.timeout = float(timeout) if timeout is not None else None
        self.connect_timeout = float(connect_timeout)
        self._template = MCPTool.template(
            max_retries=max_retries, requires_approval=requires_approval, sequential=sequential
        )
        self._tools: tuple[MCPTool, ...] = ()
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._stale = False
        self._refreshing: asyncio.Task[None] | None = None
        self._stderr: IO[bytes] | None = None
        self._secrets: tuple[str, ...] = ()

    # --- constructors ---------------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        **options: Unpack[MCPOptions],
    ) -> MCPTools:
        """A server started as a subprocess, spoken to over its stdin/stdout.

        ``env`` is added to a minimal safe environment (``PATH``, ``HOME``...). The server's
        stderr is kept in a temporary file; its last lines are shown when it fails.
        """
        if not isinstance(command, str) or not command.strip():
            raise ConfigurationError(f"command must be a program to run, got {command!r}")
        if isinstance(args, str):
            raise ConfigurationError(
                f"args must be a list of arguments, got the string {args!r}; "
                f"write args={shlex.split(args)!r}"
            )
        params = StdioServerParameters(
            command=command,
            args=[str(a) for a in args],
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        label = _safe_command([command, *params.args])
        tools: MCPTools

        async def open_stdio(stack: contextlib.AsyncExitStack) -> Any:
            errlog = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (the stack closes it)
            tools._stderr = errlog
            return stdio_client(params, errlog=cast(Any, errlog))

        tools = cls(open_stdio, label, **options)
        tools._secrets = tuple(v for v in (env or {}).values() if len(v) >= 6)
        return tools

    @classmethod
    def http(
        cls, url: str, headers: Mapping[str, str] | None = None, **options: Unpack[MCPOptions]
    ) -> MCPTools:
        """A server reached over streamable HTTP at ``url``; ``headers`` go with every request
        (they never appear in errors or logs)."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must start with http:// or https://, got {url!r}")
        hdrs = dict(headers or {})

        async def open_http(stack: contextlib.AsyncExitStack) -> Any:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            client = await stack.enter_async_context(create_mcp_http_client(headers=hdrs))
            return streamable_http_client(url, http_client=client)

        return cls(open_http, _safe_url(url), **options)

    @classmethod
    def from_server(cls, server: Any, **options: Unpack[MCPOptions]) -> MCPTools:
        """A server object of the MCP SDK (``mcp.server.Server`` or ``MCPServer``) run in this
        process, with no subprocess or network: for tests and embedding."""

        async def open_inproc(stack: contextlib.AsyncExitStack) -> Any:
            return server

        name = getattr(server, "name", None) or type(server).__name__
        return cls(open_inproc, f"in-process:{name}", **options)

    # --- the tools ------------------------------------------------------------------------------

    @property
    def tools(self) -> tuple[MCPTool, ...]:
        """The server's tools after filtering (empty before :meth:`connect`)."""
        return self._tools

    def __iter__(self) -> Iterator[MCPTool]:
        if self._owner is None:
            raise ConfigurationError(
                f"MCP server {self.server} is not connected: use `async with` (or `with`) "
                "around the code that uses its tools"
            )
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        state = "connected" if self._client is not None else "not connected"
        return f"MCPTools({self.server!r}, {state}, tools={[t.name for t in self._tools]})"

    @property
    def stale(self) -> bool:
        """The server said its list changed and the new list is not fetched yet."""
        return self._stale

    def _wanted(self, name: str) -> bool:
        if self.include is not None and not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)

    def _build(self, specs: Sequence[mcp_types.Tool], *, strict: bool) -> tuple[MCPTool, ...]:
        old = {t.server_name: t for t in self._tools}
        built: list[MCPTool] = []
        seen: dict[str, str] = {}
        for spec in specs:
            if not self._wanted(spec.name):
                continue
            name = tool_name(spec.name, self.prefix)
            if name in seen:
                raise ConfigurationError(
                    f"MCP server {self.server}: tools {seen[name]!r} and {spec.name!r} both "
                    f"become {name!r}; exclude one of them"
                )
            seen[name] = spec.name
            description = " ".join((spec.description or "").split()) or (
                spec.title or spec.name.replace("_", " ")
            )
            previous = old.get(spec.name)
            if previous is not None and previous.same_as(spec, description):
                built.append(previous)  # unchanged: the same object, so caches keep working
                continue
            try:
                parameters = parameters_for(
                    spec, name=name, description=description, server=self.server
                )
            except MCPError:
                if strict:
                    raise
                logger.error(
                    "MCP server %s: tool %r left out: schema refused", self.server, spec.name
                )
                continue
            built.append(
                MCPTool(
                    self,
                    spec,
                    name=name,
                    description=description,
                    parameters=parameters,
                    timeout=self.timeout,
                    template=self._template,
                )
            )
        return tuple(built)

    async def _list(self, client: Client) -> list[mcp_types.Tool]:
        specs: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(1000):
            page = await client.list_tools(cursor=cursor)
            specs.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return specs
        raise MCPProtocolError(
            f"MCP server {self.server} kept sending more pages of tools (1000 pages); giving up",
            server=self.server,
        )

    async def refresh(self) -> tuple[MCPTool, ...]:
        """List the server's tools again now (a tool whose schema is refused is left out, with
        an error logged) and return them."""
        client = self._require_client()
        if self._loop is not asyncio.get_running_loop():
            future = asyncio.run_coroutine_threadsafe(self.refresh(), self._loop)  # type: ignore[arg-type]
            return await asyncio.wrap_future(future)
        self._stale = False
        try:
            specs = await self._list(client)
        except SDKError as exc:
            raise self._call_failure(exc, "tools/list") from exc
        self._tools = self._build(specs, strict=False)
        logger.debug("MCP server %s: %d tools after refresh", self.server, len(self._tools))
        return self._tools

    def refresh_sync(self) -> tuple[MCPTool, ...]:
        """:meth:`refresh` for synchronous code."""
        return run_sync(self.refresh())

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            logger.debug("MCP server %s: tool list changed", self.server)
            self._stale = True
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.get_running_loop().create_task(
                    self._background_refresh()
                )
        elif isinstance(message, Exception):
            logger.debug("MCP server %s: transport error: %s", self.server, message)

    async def _background_refresh(self) -> None:
        if self._client is None:
            return  # still connecting: connect() lists again once it is done
        try:
            await self.refresh()
        except Exception as exc:
            logger.warning("MCP server %s: could not list its changed tools: %s", self.server, exc)

    # --- the connection ---------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Start (or reach) the server, finish the handshake and list its tools.

        Raises :class:`MCPConnectionError` when the server cannot be started or reached or does
        not answer within ``connect_timeout``; :class:`MCPSchemaError` when a tool's schema
        cannot be offered to the model (the message says how to exclude it).
        """
        if self._owner is not None:
            raise ConfigurationError(f"MCP server {self.server} is already connected")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._closing = asyncio.Event()
        self._owner = loop.create_task(self._serve(ready), name=f"mcp {self.server}")
        try:
            await ready
            if self._stale:  # the list changed while it was being fetched
                await self.refresh()
        except BaseException:
            await self._stop()
            raise
        logger.debug("MCP server %s: connected, %d tools", self.server, len(self._tools))
        return self

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        """The owner task: holds the connection open until ``aclose``."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        target = await self._opener(stack)
                        # The handshake-era protocol (initialize, then notifications such as
                        # tools/list_changed) is the one every server speaks; agentkit keeps
                        # its own cache of the list, so the SDK's response cache is off.
                        client = Client(
                            target, mode="legacy", cache=None, message_handler=self._on_message
                        )
                        await stack.enter_async_context(client)
                        specs = await self._list(client)
                        self._tools = self._build(specs, strict=True)
                except MCPError as exc:
                    ready.set_exception(exc)
                    return
                except TimeoutError:
                    ready.set_exception(
                        MCPConnectionError(
                            f"MCP server {self.server} did not finish starting (handshake and "
                            f"tool list) within {self.connect_timeout:g} s{self._stderr_note()}",
                            server=self.server,
                        )
                    )
                    return
                except Exception as exc:
                    ready.set_exception(self._start_failure(exc))
                    return
                self._client = client
                ready.set_result(None)
                assert self._closing is not None
                await self._closing.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:  # the transport failed while closing or in use
            if not ready.done():
                ready.set_exception(self._start_failure(exc))
            else:
                logger.debug("MCP server %s: connection ended with %r", self.server, exc)
        finally:
            self._client = None

    async def aclose(self) -> None:
        """Close the connection (and stop a stdio server). Safe to call more than once."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.aclose(), self._loop))
            return
        await self._stop()

    async def _stop(self) -> None:
        owner, self._owner = self._owner, None
        if self._refreshing is not None:
            self._refreshing.cancel()
            self._refreshing = None
        if owner is None:
            return
        if self._closing is not None:
            self._closing.set()
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(owner)
        except TimeoutError:
            owner.cancel()
            with contextlib.suppress(BaseException):
                await owner
        except BaseException as exc:  # the owner's own failure was reported already
            logger.debug("MCP server %s: closed with %r", self.server, exc)
        self._client = None
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def connect_sync(self) -> Self:
        """:meth:`connect` for synchronous code (the connection lives on agentkit's background
        loop, where ``Agent.run_sync`` runs too)."""
        return run_sync(self.connect())

    def close_sync(self) -> None:
        """:meth:`aclose` for synchronous code."""
        run_sync(self.aclose())

    def __enter__(self) -> Self:
        return self.connect_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_sync()

    # --- calls --------------------------------------------------------------------------------

    def _require_client(self) -> Client:
        if self._client is None:
            if self._owner is None:
                raise ConfigurationError(
                    f"MCP server {self.server} is not connected (connect it with `async with` "
                    "before running the agent)"
                )
            raise MCPConnectionLost(
                f"MCP server {self.server} is no longer connected{self._stderr_note()}",
                server=self.server,
            )
        return self._client

    async def call(
        self, server_name: str, arguments: dict[str, Any], limit: float | None, shown: str
    ) -> mcp_types.CallToolResult:
        """One ``tools/call``. Failures of this call alone (a timeout, a JSON-RPC error for it)
        raise tool errors the model reads; a server that went away raises
        :class:`MCPConnectionLost`, a malformed answer :class:`MCPProtocolError`."""
        client = self._require_client()
        if self._loop is not asyncio.get_running_loop():
            future = asyncio.run_coroutine_threadsafe(
                self.call(server_name, arguments, limit, shown),
                self._loop,  # type: ignore[arg-type]
            )
            return await asyncio.wrap_future(future)
        try:
            async with asyncio.timeout(limit):
                return await client.call_tool(server_name, arguments)
        except TimeoutError:
            raise ToolTimeoutError(
                f"tool '{shown}' timed out after {limit:g} s (the MCP server did not answer in "
                "time; it is still running)",
                tool_name=shown,
                timeout=limit or 0.0,
            ) from None
        except SDKError as exc:
            raise self._call_failure(exc, shown) from exc
        except ValidationError as exc:
            raise MCPProtocolError(
                f"MCP server {self.server} answered a call to '{shown}' with a malformed result: "
                f"{str(exc).splitlines()[0]}",
                server=self.server,
            ) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise self._lost_error(f"the connection closed during a call to '{shown}'") from exc

    def _call_failure(self, exc: SDKError, shown: str) -> Exception:
        if exc.code == _CONNECTION_CLOSED:
            return self._lost_error(f"the connection closed during a call to '{shown}'")
        return ToolExecutionError(
            f"tool '{shown}' failed on the MCP server: {exc.message or 'no message'} "
            f"(JSON-RPC error {exc.code}); the server is still running",
            tool_name=shown,
            original=exc,
        )

    def _lost_error(self, what: str) -> MCPConnectionLost:
        return MCPConnectionLost(
            f"MCP server {self.server}: {what}; the server has stopped or the connection "
            f"dropped{self._stderr_note()}",
            server=self.server,
        )

    def _start_failure(self, exc: BaseException) -> MCPError:
        inner = _innermost(exc)
        if isinstance(inner, FileNotFoundError):
            what = f"the program {inner.filename or self.server.split()[0]!r} was not found"
        elif (isinstance(inner, SDKError) and inner.code == _CONNECTION_CLOSED) or isinstance(
            inner,
            anyio.BrokenResourceError
            | anyio.ClosedResourceError
            | anyio.EndOfStream
            | BrokenPipeError
            | ConnectionResetError,
        ):
            what = "it closed the connection before the handshake finished (did it exit?)"
        elif isinstance(inner, ValidationError):
            return MCPProtocolError(
                f"MCP server {self.server} sent a malformed answer while starting: "
                f"{str(inner).splitlines()[0]}",
                server=self.server,
            )
        else:
            what = f"{type(inner).__name__}: {inner}"
        return MCPConnectionError(
            f"MCP server {self.server} could not be started or reached: {what}{self._stderr_note()}",
            server=self.server,
        )

    def _stderr_note(self) -> str:
        """The end of a stdio server's stderr, for error messages (env values hidden)."""
        log = self._stderr
        if log is None or log.closed:
            return ""
        try:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - _STDERR_TAIL))
            tail = log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        for secret in self._secrets:
            tail = tail.replace(secret, "***")
        return f"; its stderr ends with:\n{tail}" if tail else ""


def _innermost(exc: BaseException) -> BaseException:
    """The first real error inside nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


_SECRET_FLAG = re.compile(r"(?i)token|key|secret|passw|auth|credential|bearer")


def _safe_command(words: Sequence[str]) -> str:
    """A command line for messages, with the values of flags that look secret hidden
    (``--api-key X`` -> ``--api-key ***``, ``--token=X`` -> ``--token=***``)."""
    shown: list[str] = []
    hide_next = False
    for word in words:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif word.startswith("-") and _SECRET_FLAG.search(word.partition("=")[0]):
            flag, equals, _ = word.partition("=")
            shown.append(f"{shlex.quote(flag)}=***" if equals else shlex.quote(word))
            hide_next = not equals
        else:
            shown.append(shlex.quote(word))
    return " ".join(shown)


def _safe_url(url: str) -> str:
    """A URL without credentials or query (those may hold secrets), for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
