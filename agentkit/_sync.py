"""Run agentkit's async code from synchronous code, including inside a running event loop.

Every ``*_sync`` twin goes through :func:`run_sync`. The coroutines run on one background event
loop that agentkit owns (a daemon thread started on first use), so:

- it works in plain scripts and where a loop is already running (Jupyter, async frameworks);
- pooled HTTP connections are reused across sync calls, because they always run on the same loop;
- Ctrl-C in the calling thread cancels the coroutine, which then cleans up as on any cancel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_sync", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=serve, name="agentkit-sync", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on agentkit's background loop and return its result."""
    loop = _portal_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a *_sync method was called from inside agentkit's own event loop; "
            "await the async version instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        # KeyboardInterrupt (or any interruption of the wait): cancel the work and let it
        # clean up before giving control back, so nothing keeps running behind the caller.
        if not future.done():
            future.cancel()
            with contextlib.suppress(concurrent.futures.CancelledError, Exception):
                future.result(timeout=5)
        raise


def iterate_sync(events: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, one item per step of agentkit's loop.

    Leaving early (``break``, an exception in the caller, the generator being dropped) closes
    the async iterator on that loop, so its cleanup runs before control comes back.
    """

    async def step() -> tuple[bool, T | None]:
        try:
            return True, await events.__anext__()
        except StopAsyncIteration:
            return False, None

    running = True  # False once the async iterator has ended, or raised through step()
    try:
        while True:
            try:
                more, item = run_sync(step())
            except BaseException:
                running = False
                raise
            if not more:
                running = False
                return
            yield item  # type: ignore[misc]
    finally:
        aclose = getattr(events, "aclose", None)
        if running and aclose is not None:
            run_sync(aclose())
