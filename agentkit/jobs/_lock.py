"""One process at a time on a job's output file: a lock file next to it, holding the PID.

``results.jsonl`` is locked through ``results.jsonl.lock``. On POSIX the lock is an ``flock``
on that file, so the operating system releases it when the holder dies however it dies
(SIGKILL included): a lock left by a dead process is simply taken over. The PID written in the
file names the holder in the error a second process gets. Where ``flock`` does not exist the
file itself is the lock (created exclusively, removed on release); one left by a crash must
then be removed by hand, and the error says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from ..errors import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputLock", "OutputLockedError", "lock_path"]

logger = logging.getLogger("agentkit.jobs")


class OutputLockedError(ConfigurationError):
    """Another process is working on the same output file (``pid`` names it when known)."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


def lock_path(output: Path) -> Path:
    """The lock file of an output file: ``<output>.lock`` in the same folder."""
    return output.with_name(output.name + ".lock")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class OutputLock:
    """The lock on one output file; :meth:`acquire` it before reading or writing the file."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Self:
        """Take the lock, or raise :class:`OutputLockedError` naming the process that has it."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - not POSIX
            self._fd = self._acquire_exclusive()
        else:
            self._fd = self._acquire_flock()
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode("ascii"))
        return self

    def _acquire_flock(self) -> int:
        assert fcntl is not None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = _read_pid(self.path)
                raise self._locked(pid) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else will see; start again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                stale = _read_pid(self.path)
                if stale is not None and stale != os.getpid():
                    logger.info(
                        "%s: took over the lock left by process %d, which is no longer running",
                        self.path,
                        stale,
                    )
                return fd
            os.close(fd)

    def _acquire_exclusive(self) -> int:  # pragma: no cover - not POSIX
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = _read_pid(self.path)
            raise OutputLockedError(
                f"{str(self.output)!r} is in use by process {pid} (lock file {str(self.path)!r}); "
                "wait for it to finish, or remove the lock file if that process is gone",
                pid=pid,
            ) from None

    def _locked(self, pid: int | None) -> OutputLockedError:
        holder = f"process {pid}" if pid is not None else "another process"
        return OutputLockedError(
            f"{str(self.output)!r} is in use by {holder} (lock file {str(self.path)!r}): "
            "two processes on one output file would run the same inputs twice. Wait for it to "
            "finish or stop it, then run again; to run more workers on one job, use the durable "
            "mode (--durable, docs/durable.md)",
            pid=pid,
        )

    def release(self) -> None:
        """Give the lock back and remove the lock file."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Removed while still locked, so a process that opened the old file sees it is gone.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
