"""Conversations that outlive a run: a small ``Session`` protocol and two stores.

A session keeps a conversation so that a later run (in this process or another one, after a
restart or a crash) continues it::

    session = SQLiteSession("alice", "chats.db", max_messages=40)
    await agent.run("Book a table for two", session=session)
    await agent.run("Make it 8 pm", session=session)   # the model sees the first exchange

The agent loads the history at the start of a run and appends what the run adds after every
step, so a crash mid-run loses at most the step in flight. The store keeps everything;
:meth:`Session.trim` decides what the model is sent. One run at a time: :meth:`Session.lock`
refuses a second run on the same conversation with :class:`~agentkit.errors.SessionBusyError`.

- :class:`Session`: the protocol the agent uses (``load``, ``append``, ``clear``, ``trim``,
  ``lock``); implement it to keep conversations elsewhere.
- :class:`SQLiteSession`: the standard library's ``sqlite3``, safe with several processes on
  one file (WAL, transactions, a lock row whose holder is checked for being alive).
- :class:`MemorySession`: a list in memory, for tests and short scripts.
- :func:`trim_messages`: the trimming rule both use, for your own stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .errors import ConfigurationError, SessionBusyError
from .messages import Message

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "MemorySession",
    "SQLiteSession",
    "Session",
    "SessionRun",
    "affinity_key",
    "estimate_tokens",
    "trim_messages",
]

_log = logging.getLogger("agentkit.sessions")


@runtime_checkable
class Session(Protocol):
    """Where a conversation is kept between runs.

    - ``load()``: the stored conversation, oldest first (everything, untrimmed).
    - ``append(messages)``: add messages at the end; called after every step of a run.
    - ``clear()``: forget the conversation.
    - ``trim(messages)``: what the model is sent of a transcript; must keep the leading system
      message(s) and never separate an assistant turn's tool calls from their results (return
      the list unchanged to send everything; :func:`trim_messages` implements the rule).
    - ``lock(run_id)``: an async context manager held for the whole run; it raises
      :class:`~agentkit.errors.SessionBusyError` when another run holds the session.
    """

    @property
    def session_id(self) -> str: ...

    async def load(self) -> list[Message]: ...

    async def append(self, messages: Sequence[Message]) -> None: ...

    async def clear(self) -> None: ...

    def trim(self, messages: Sequence[Message]) -> list[Message]: ...

    def lock(self, run_id: str) -> AbstractAsyncContextManager[None]: ...


# --- trimming --------------------------------------------------------------------------------


def estimate_tokens(message: Message) -> int:
    """A rough token count of one message: about four characters a token, plus a little for
    the role and framing. Good enough to bound a context; not a tokenizer."""
    size = len(message.content)
    for call in message.tool_calls:
        size += len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False))
    return size // 4 + 4


def trim_messages(
    messages: Sequence[Message],
    *,
    max_messages: int | None = None,
    max_input_tokens: int | None = None,
) -> list[Message]:
    """The end of a conversation that fits the bounds, cut only between whole turns.

    The leading system message(s) are always kept and not counted. The rest is cut into turns:
    a message with the tool results that follow it (an assistant turn and the results of its
    calls stay together). Whole turns are kept from the end while they fit in ``max_messages``
    messages and ``max_input_tokens`` estimated tokens (:func:`estimate_tokens`, system
    messages included). The latest turn is always kept, even when it alone is over a bound;
    so is the last user message (the request being worked on), placed right after the system
    prompt when the turns after it do not all fit, and counted in the bounds.
    """
    if max_messages is None and max_input_tokens is None:
        return list(messages)
    head = 0
    while head < len(messages) and messages[head].role == "system":
        head += 1
    pin = len(messages) - 1
    while pin >= head and messages[pin].role != "user":
        pin -= 1
    budget = [len(messages) if max_messages is None else max_messages, 0]
    if max_input_tokens is not None:
        budget[1] = max_input_tokens - sum(estimate_tokens(m) for m in messages[:head])

    def cost(part: Sequence[Message]) -> tuple[int, int]:
        tokens = 0 if max_input_tokens is None else sum(estimate_tokens(m) for m in part)
        return len(part), tokens

    def walk(end: int, stop: int, keep_one: bool) -> int:
        """Where the whole turns of ``messages[stop:end]`` that fit begin, from the end."""
        start = end
        while end > stop:
            first = end - 1
            while first > stop and messages[first].role == "tool":
                first -= 1
            size, tokens = cost(messages[first:end])
            fits = size <= budget[0] and (max_input_tokens is None or tokens <= budget[1])
            if not fits and not (keep_one and start == len(messages)):
                break
            budget[0] -= size
            budget[1] -= tokens
            start = end = first
        return start

    if pin < head or pin == len(messages) - 1:  # no user message, or it is the latest turn
        return [*messages[:head], *messages[walk(len(messages), head, True) :]]
    size, tokens = cost(messages[pin : pin + 1])
    budget[0] -= size
    budget[1] -= tokens
    after = walk(len(messages), pin + 1, True)
    if after > pin + 1:  # the turns after the request do not all fit: pin it
        return [*messages[:head], messages[pin], *messages[after:]]
    return [*messages[:head], *messages[walk(pin, head, False) :]]


def _check_bounds(max_messages: int | None, max_input_tokens: int | None) -> None:
    if max_messages is not None and (not isinstance(max_messages, int) or max_messages < 1):
        raise ConfigurationError(
            f"max_messages must be None (send everything) or at least 1, got {max_messages!r}"
        )
    if max_input_tokens is not None and (
        not isinstance(max_input_tokens, int) or max_input_tokens < 1
    ):
        raise ConfigurationError(
            f"max_input_tokens must be None (no token bound) or at least 1, got {max_input_tokens!r}"
        )


def _check_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not session_id or len(session_id) > 512:
        raise ConfigurationError(
            f"session_id must be a non-empty string of at most 512 characters, got {session_id!r}"
        )
    return session_id


# --- in memory -------------------------------------------------------------------------------


class MemorySession:
    """A conversation kept in a list, for tests and scripts (lost when the process ends).

    One run at a time, like every session: a second concurrent run raises
    :class:`~agentkit.errors.SessionBusyError`.
    """

    def __init__(
        self,
        session_id: str = "default",
        *,
        max_messages: int | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        _check_bounds(max_messages, max_input_tokens)
        self._id = _check_id(session_id)
        self.max_messages = max_messages
        self.max_input_tokens = max_input_tokens
        self.messages: list[Message] = []
        self._holder: str | None = None

    @property
    def session_id(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"MemorySession({self._id!r}, messages={len(self.messages)})"

    async def load(self) -> list[Message]:
        return list(self.messages)

    async def append(self, messages: Sequence[Message]) -> None:
        self.messages.extend(messages)

    async def clear(self) -> None:
        if self._holder is not None:
            raise SessionBusyError(
                f"session {self._id!r} is in use by run {self._holder}; clear it after that run",
                holder=self._holder,
            )
        self.messages.clear()

    def trim(self, messages: Sequence[Message]) -> list[Message]:
        return trim_messages(
            messages, max_messages=self.max_messages, max_input_tokens=self.max_input_tokens
        )

    @asynccontextmanager
    async def lock(self, run_id: str) -> AsyncIterator[None]:
        if self._holder is not None:
            raise SessionBusyError(
                f"session {self._id!r} is in use by run {self._holder}: two runs on one "
                "conversation at a time are refused; wait for it to finish or use another session",
                holder=self._holder,
            )
        self._holder = run_id
        try:
            yield
        finally:
            self._holder = None


# --- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agentkit_messages (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS agentkit_session_locks (
    session_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    process_start TEXT,
    acquired_at REAL NOT NULL
);
"""

#: Runs of this process that hold a session lock (a row with our own pid is alive only if its
#: run is here; one left by a run that never released it is stale).
_held_here: set[str] = set()


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux; ``[]`` elsewhere):
    ``[0]`` is the state, ``[19]`` the start time."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return []


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, to tell a reused pid from the process that took a lock."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def _this_host() -> str:
    """The host name, with the pid namespace when there is one: containers that share a file
    and a host name but not their process ids count as different hosts (never judged dead)."""
    host = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return host
    return f"{host} {namespace}"


def _alive(run_id: str, pid: int, host: str, process_start: str | None) -> bool:
    """Whether the holder of a lock row still runs. On another host we cannot tell: yes."""
    if host != _this_host():
        return True
    if pid == os.getpid():
        return run_id in _held_here
    if os.name == "nt":
        return True  # no way to ask here without a risk to the process (os.kill ends it)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return False
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    start = fields[19] if len(fields) > 19 else None
    return not (process_start and start and start != process_start)


class SQLiteSession:
    """A conversation kept in an SQLite file (standard library ``sqlite3``, no dependency).

    Args:
        session_id: which conversation; one file holds any number of them.
        path: the database file (created if missing), or ``":memory:"``.
        max_messages: the most messages the model is sent (system prompt not counted); the
            file keeps everything. ``None``: send the whole conversation.
        max_input_tokens: the most estimated tokens of history the model is sent.
        timeout: seconds to wait for another process's write to finish.
        synchronous: ``"NORMAL"`` (a saved step survives the process being killed) or
            ``"FULL"`` (it survives a power cut too; each save waits for the disk).

    Several processes may use one file: it is opened in WAL mode, every write is one
    transaction, and a run holds a lock row for the session (its run id, process id, host and
    process start time). A second run on the same session is refused with
    :class:`~agentkit.errors.SessionBusyError`; a row left by a process that was killed is
    taken over (its process is checked for being alive). Use it as a context manager, or call
    :meth:`close`, to close the file.
    """

    def __init__(
        self,
        session_id: str,
        path: str | os.PathLike[str] = "agentkit.db",
        max_messages: int | None = None,
        *,
        max_input_tokens: int | None = None,
        timeout: float = 30.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        _check_bounds(max_messages, max_input_tokens)
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.synchronous = synchronous
        self._id = _check_id(session_id)
        self.path = str(path) if str(path) == ":memory:" else str(Path(path))
        self.max_messages = max_messages
        self.max_input_tokens = max_input_tokens
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._pid = 0  # the process that opened ``_db``
        self._guard = threading.Lock()  # one connection, used from worker threads in turn

    @property
    def session_id(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"SQLiteSession({self._id!r}, path={self.path!r}, max_messages={self.max_messages})"

    # --- the connection ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection inside a transaction (``BEGIN IMMEDIATE`` for writes: the write lock
        is taken up front, so two processes never both read and then both write)."""
        with self._guard:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.commit()

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None and self._pid != os.getpid():
            self._db = None  # a forked child: the parent's connection is not ours to use
        if self._db is None:
            import sqlite3

            try:
                db = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise ConfigurationError(f"cannot open session file {self.path!r}: {exc}") from exc
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self.synchronous}")
                db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                db.close()
                raise ConfigurationError(
                    f"cannot use {self.path!r} as a session file: {exc}"
                ) from exc
            self._db, self._pid = db, os.getpid()
        return self._db

    def close(self) -> None:
        """Close the file (a later call opens it again)."""
        with self._guard:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> SQLiteSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SQLiteSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # --- the protocol -------------------------------------------------------------------------

    async def load(self) -> list[Message]:
        return await asyncio.to_thread(self.load_sync)

    async def append(self, messages: Sequence[Message]) -> None:
        if messages:
            await asyncio.to_thread(self.append_sync, messages)

    async def clear(self) -> None:
        await asyncio.to_thread(self.clear_sync)

    def trim(self, messages: Sequence[Message]) -> list[Message]:
        return trim_messages(
            messages, max_messages=self.max_messages, max_input_tokens=self.max_input_tokens
        )

    @asynccontextmanager
    async def lock(self, run_id: str) -> AsyncIterator[None]:
        acquiring = asyncio.ensure_future(asyncio.to_thread(self._acquire, run_id))
        try:
            await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            # The worker thread cannot be stopped: if it takes the lock after all, give it back.
            acquiring.add_done_callback(lambda done: self._undo(done, run_id))
            raise
        try:
            yield
        finally:
            _held_here.discard(run_id)
            await asyncio.to_thread(self._release, run_id)

    # --- the same, synchronously (for scripts and tools that inspect a conversation) ---------

    def load_sync(self) -> list[Message]:
        """The whole stored conversation, oldest first."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT message FROM agentkit_messages WHERE session_id = ? ORDER BY seq",
                (self._id,),
            ).fetchall()
        return [Message.model_validate_json(row[0]) for row in rows]

    def append_sync(self, messages: Sequence[Message]) -> None:
        """Add messages at the end of the conversation, in one transaction."""
        rows = [m.model_dump_json(exclude_defaults=True) for m in messages]
        now = time.time()
        with self._transaction(write=True) as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM agentkit_messages WHERE session_id = ?",
                (self._id,),
            ).fetchone()
            db.executemany(
                "INSERT INTO agentkit_messages (session_id, seq, message, created_at) "
                "VALUES (?, ?, ?, ?)",
                [(self._id, last + i, row, now) for i, row in enumerate(rows, 1)],
            )

    def clear_sync(self) -> None:
        """Forget the conversation (refused while a run in another process holds it)."""
        with self._transaction(write=True) as db:
            self._check_free(db, None)
            db.execute("DELETE FROM agentkit_messages WHERE session_id = ?", (self._id,))

    def holder(self) -> str | None:
        """Who holds the session now (``run <id>, pid <n> on <host>``), or ``None``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT run_id, pid, host, process_start FROM agentkit_session_locks "
                "WHERE session_id = ?",
                (self._id,),
            ).fetchone()
        if row is None or not _alive(*row):
            return None
        return _describe(row)

    def break_lock(self) -> None:
        """Remove the session's lock row whoever holds it (for a holder on another host that
        you know is gone; on this host a dead holder's lock is taken over by itself)."""
        with self._transaction(write=True) as db:
            db.execute("DELETE FROM agentkit_session_locks WHERE session_id = ?", (self._id,))

    # --- the lock row -------------------------------------------------------------------------

    def _check_free(self, db: sqlite3.Connection, run_id: str | None) -> None:
        row = db.execute(
            "SELECT run_id, pid, host, process_start FROM agentkit_session_locks "
            "WHERE session_id = ?",
            (self._id,),
        ).fetchone()
        if row is None:
            return
        if _alive(*row):
            holder = _describe(row)
            what = "run" if run_id is not None else "clear"
            raise SessionBusyError(
                f"session {self._id!r} in {self.path!r} is in use by {holder}: cannot {what} it "
                "now (two runs on one conversation are refused, not interleaved); wait for that "
                "run to finish, or use another session_id"
                + (
                    "; if that host's process is gone, call break_lock()"
                    if row[2] != _this_host()
                    else ""
                ),
                holder=holder,
            )
        _log.warning(
            "session %r: taking over the lock left by %s, which no longer runs",
            self._id,
            _describe(row),
        )
        db.execute("DELETE FROM agentkit_session_locks WHERE session_id = ?", (self._id,))

    def _acquire(self, run_id: str) -> None:
        pid = os.getpid()
        with self._transaction(write=True) as db:
            self._check_free(db, run_id)
            db.execute(
                "INSERT INTO agentkit_session_locks "
                "(session_id, run_id, pid, host, process_start, acquired_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._id, run_id, pid, _this_host(), _process_start(pid), time.time()),
            )
        _held_here.add(run_id)

    def _undo(self, acquiring: asyncio.Future[None], run_id: str) -> None:
        if acquiring.cancelled() or acquiring.exception() is not None:
            return
        _held_here.discard(run_id)
        threading.Thread(target=self._release, args=(run_id,), daemon=True).start()

    def _release(self, run_id: str) -> None:
        with self._transaction(write=True) as db:
            db.execute(
                "DELETE FROM agentkit_session_locks WHERE session_id = ? AND run_id = ?",
                (self._id, run_id),
            )


def affinity_key(session_id: str) -> str:
    """One key for every run of a conversation (``x-session-affinity``), so its requests reach
    the replica that caches its prompt: a hash of the session id, nothing readable."""
    return "session-" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def _finished(last: Message) -> bool:
    return last.role == "assistant" and not last.tool_calls


def _describe(row: Any) -> str:
    run_id, pid, host = row[0], row[1], row[2]
    return f"run {run_id} (pid {pid} on {host})"


# --- what a run does with its session ------------------------------------------------------


class SessionRun:
    """One run's hold on a session: the lock, and how much of the transcript is stored.

    Used by the agent loop: :meth:`open` takes the lock and loads the history, :meth:`save`
    appends what the transcript gained since the last save, :meth:`close` lets go of the lock.
    """

    __slots__ = ("_lock", "saved", "session")

    def __init__(self, session: Session, lock: AbstractAsyncContextManager[None]) -> None:
        self.session = session
        self._lock = lock
        self.saved = 0  # messages[:saved] are stored (or are the agent's own system prompt)

    @classmethod
    async def open(
        cls,
        session: Session,
        run_id: str,
        history: Sequence[Message] | None = None,
        resuming: bool = False,
    ) -> tuple[SessionRun, list[Message]]:
        """Lock the session and load it. ``resuming`` (no new prompt): there must be a run to
        finish, a conversation that does not end with an answer."""
        if history is not None:
            raise ConfigurationError(
                "pass a session or a message_history, not both: the session holds the history"
            )
        if not isinstance(session, Session):
            raise ConfigurationError(
                f"session must implement agentkit.Session (load, append, clear, trim, lock), "
                f"got {type(session).__name__}"
            )
        lock = session.lock(run_id)
        await lock.__aenter__()
        try:
            loaded = await session.load()
            if resuming and (not loaded or _finished(loaded[-1])):
                state = "ends with an answer" if loaded else "is empty"
                raise ConfigurationError(
                    f"nothing to run: session {session.session_id!r} {state}, with no run to "
                    "finish; pass a prompt to continue the conversation"
                )
        except BaseException as exc:
            await lock.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return cls(session, lock), loaded

    @property
    def affinity_key(self) -> str:
        return affinity_key(self.session.session_id)

    async def save(self, messages: list[Message]) -> None:
        if len(messages) > self.saved:
            await self.session.append(messages[self.saved :])
            self.saved = len(messages)

    async def close(self, messages: list[Message] | None = None) -> None:
        """Save what is left (when ``messages`` is given) and release the lock; a failure to
        save is logged, never hidden, and the lock is released whatever happens."""
        try:
            if messages is not None:
                try:
                    await self.save(messages)
                except Exception as exc:
                    _log.warning(
                        "session %r: the last %d messages could not be saved: %s: %s",
                        self.session.session_id,
                        len(messages) - self.saved,
                        type(exc).__name__,
                        exc,
                    )
        finally:
            await self._lock.__aexit__(None, None, None)
