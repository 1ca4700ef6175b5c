"""The input and output format every job shares, and the code that reads and writes it.

Inputs: a list of strings or ``{"input": ..., "id": ...}`` objects, or a JSONL file of them.
Results: a JSONL file, one line per finished input, appended as each input finishes::

    {"id": 7, "index": 7, "input": "...", "output": "...", "usage": {...}, "steps": 2, "error": null}

A failed input has ``"output": null`` and ``"error": {"type": ..., "message": ...}``. The last
line for an id wins (a failed input that succeeds on a later run gets a second line).

A runner opens the results with :meth:`ResultsFile.open` (which locks the file against a second
process, drops a last line cut short by a crash and, when resuming, knows which inputs are done),
builds each line with :func:`result_record` / :func:`failure_record` and appends it with
:meth:`ResultsFile.write`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pydantic_core

from .._json import loads
from ..errors import AgentKitError, ConfigurationError
from ..messages import Usage
from ._lock import OutputLock

__all__ = [
    "BatchItem",
    "InputId",
    "ResultsFile",
    "error_usage",
    "failure_record",
    "input_key",
    "iter_records",
    "read_inputs",
    "read_results",
    "result_record",
]

logger = logging.getLogger("agentkit.jobs")

InputId = str | int


@dataclass(frozen=True)
class BatchItem:
    """One input of a job: its ``id`` (given, or its position), position and prompt."""

    id: InputId
    index: int
    input: str


def input_key(item_id: Any) -> str:
    """A key that tells ids apart by type too (``1`` and ``"1"`` are different inputs)."""
    return json.dumps(item_id)


# --- inputs -------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, line, complete)`` for each line of a JSONL file, read as it goes.

    Lines end with ``\\n`` only (a ``\\r`` before it is dropped). ``str.splitlines`` would also
    split on characters JSON allows raw inside strings (U+2028, U+2029, U+0085, ``\\x1c`` to
    ``\\x1e``, ``\\x0b``, ``\\x0c``) and cut a valid line in two. ``complete`` is False for a
    last line without its ``\\n``.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):  # binary files split on b"\n" only
            complete = raw.endswith(b"\n")
            line = raw[:-1] if complete else raw
            yield number, line[:-1] if line.endswith(b"\r") else line, complete


def _item(raw: Any, index: int, where: str) -> BatchItem:
    if isinstance(raw, str):
        return BatchItem(id=index, index=index, input=raw)
    if isinstance(raw, Mapping):
        text = raw.get("input", raw.get("prompt"))
        if not isinstance(text, str):
            raise ConfigurationError(
                f"{where}: an input object needs an 'input' (or 'prompt') string, "
                f"got keys {sorted(raw)}"
            )
        item_id = raw.get("id", index)
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise ConfigurationError(
                f"{where}: 'id' must be a string or an integer, got {item_id!r}"
            )
        return BatchItem(id=item_id, index=index, input=text)
    raise ConfigurationError(
        f"{where}: an input must be a string or an object with 'input' (and optional 'id'), "
        f"got {type(raw).__name__}"
    )


def read_inputs(inputs: str | os.PathLike[str] | Sequence[Any]) -> list[BatchItem]:
    """The inputs of a job, from a list or a JSONL file (one string or object per line).

    The file is UTF-8 (a byte order mark at the start is ignored); lines end with ``\\n`` (or
    ``\\r\\n``) and nothing else ends a line, so strings may hold U+2028, U+0085 or control
    characters such as ``\\x1c`` (raw or escaped); blank lines are skipped. An item without ``id``
    is known by its 0-based position. Ids must be unique.
    """
    items: list[BatchItem] = []
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        try:
            for number, line, _ in _lines(path):
                if number == 1:
                    # Files saved by some editors and spreadsheets start with a BOM.
                    line = line.removeprefix(b"\xef\xbb\xbf")
                if not line.strip():
                    continue
                where = f"{path.name} line {number}"
                try:
                    # strict=False: control characters raw inside strings, as some writers
                    # leave them, are read as they are.
                    raw = loads(line.decode("utf-8"), strict=False)
                except UnicodeDecodeError as exc:
                    raise ConfigurationError(
                        f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                        "the file as UTF-8"
                    ) from None
                except ValueError as exc:
                    reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                    raise ConfigurationError(
                        f"{where} is not valid JSON ({reason}); each line must be a JSON string "
                        'or an object like {"id": 1, "input": "..."}'
                    ) from None
                items.append(_item(raw, len(items), where))
        except OSError as exc:
            raise ConfigurationError(f"cannot read batch inputs {str(path)!r}: {exc}") from exc
    else:
        for index, raw in enumerate(inputs):
            items.append(_item(raw, index, f"input {index}"))
    seen: dict[str, int] = {}
    for item in items:
        key = input_key(item.id)
        if key in seen:
            raise ConfigurationError(
                f"inputs {seen[key]} and {item.index} have the same id {item.id!r}; "
                "ids must be unique so results can be matched to inputs"
            )
        seen[key] = item.index
    return items


# --- result lines -------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return pydantic_core.to_jsonable_python(value, fallback=str)


def result_record(item: BatchItem, output: Any, usage: Usage, steps: int) -> dict[str, Any]:
    """The result line of an input that finished."""
    return {
        "id": item.id,
        "index": item.index,
        "input": item.input,
        "output": _jsonable(output),
        "usage": usage.model_dump(),
        "steps": steps,
        "error": None,
    }


def error_usage(error: BaseException) -> Usage:
    """What a failed run used before it failed (agentkit errors carry it; others: nothing)."""
    return error.usage if isinstance(error, AgentKitError) and error.usage else Usage()


def failure_record(item: BatchItem, error: BaseException) -> dict[str, Any]:
    """The result line of an input whose run failed (its usage so far, when the error has it)."""
    usage = error_usage(error)
    return {
        "id": item.id,
        "index": item.index,
        "input": item.input,
        "output": None,
        "usage": usage.model_dump(),
        "steps": None,
        "error": {"type": type(error).__name__, "message": str(error)},
    }


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The result lines of a results file, in file order (a last line cut short is skipped)."""
    path = Path(path)
    for number, line, complete in _lines(path):
        if not complete:
            return  # a last line cut short: not a result
        if not line.strip():
            continue
        try:
            record = loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            logger.warning("%s line %d is not valid JSON; ignored", path, number)
            continue
        if isinstance(record, dict) and "id" in record:
            yield record


def read_results(path: str | os.PathLike[str]) -> dict[InputId, dict[str, Any]]:
    """The results in a results file, by input id; the last line for an id wins."""
    results: dict[InputId, dict[str, Any]] = {}
    for record in iter_records(path):
        results[record["id"]] = record
    return results


# --- the results file ---------------------------------------------------------------------------


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so new lines start on their own line."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    with path.open("rb+") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
    logger.warning("%s ended with an unfinished line; it was removed", path)


@dataclass
class ResultsFile:
    """A job's results file, open for appending and locked against other processes.

    After :meth:`open`: ``done`` holds the keys (:func:`input_key`) of the inputs that already
    have a successful line, ``previous`` those lines by key, ``changed`` the ids whose input
    text differs from the text their result was made from (see :meth:`check_inputs`).
    """

    path: Path
    done: set[str] = field(default_factory=set)
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: list[InputId] = field(default_factory=list)
    _handle: IO[str] | None = None
    _lock: OutputLock | None = None

    @classmethod
    def open(
        cls, output: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False
    ) -> ResultsFile:
        """Lock ``output`` and open it: appended to with ``resume``, replaced with ``overwrite``.

        Without either, an existing non-empty file is an error, so no result is lost by
        mistake. A second process on the same file gets :class:`OutputLockedError`, naming the
        process that holds it.
        """
        if resume and overwrite:
            raise ConfigurationError(
                "resume=True and overwrite=True contradict each other; pick one"
            )
        path = Path(output)
        if path.is_dir():
            raise ConfigurationError(
                f"the output {str(path)!r} is a folder; give the path of a file, such as "
                f"{str(path / 'results.jsonl')!r}"
            )
        try:
            lock = OutputLock(path).acquire()
        except OSError as exc:
            raise ConfigurationError(f"cannot lock the output file {str(path)!r}: {exc}") from exc
        try:
            results = cls(path=path, _lock=lock)
            exists = path.exists() and path.stat().st_size > 0
            if exists and not resume and not overwrite:
                raise ConfigurationError(
                    f"the output file {str(path)!r} already exists; pass resume=True (--resume) "
                    "to continue it, overwrite=True (--overwrite) to replace it, or choose "
                    "another file"
                )
            if exists and resume:
                _drop_partial_line(path)
                for record in iter_records(path):
                    key = input_key(record["id"])
                    if record.get("error"):
                        results.done.discard(key)
                        results.previous.pop(key, None)
                    else:
                        results.done.add(key)
                        results.previous[key] = record
            results._handle = path.open("a" if resume else "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            lock.release()
            raise ConfigurationError(f"cannot write the output file {str(path)!r}: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        return results

    def check_inputs(self, items: Sequence[BatchItem]) -> list[BatchItem]:
        """The items still to run; records in ``changed`` the done ids whose text changed."""
        todo: list[BatchItem] = []
        self.changed = []
        for item in items:
            key = input_key(item.id)
            if key not in self.done:
                todo.append(item)
                continue
            before = self.previous[key].get("input")
            if isinstance(before, str) and before != item.input:
                self.changed.append(item.id)
        return todo

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one result line and flush it (a crash loses at most a line being written)."""
        if self._handle is None:
            raise ValueError(f"the results file {str(self.path)!r} is closed")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file and release the lock."""
        handle, self._handle = self._handle, None
        try:
            if handle is not None:
                handle.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
