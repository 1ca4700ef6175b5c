"""Run one agent over many inputs, saving each result to a JSONL file as soon as it finishes.

Inputs are a list (strings, or dicts with ``input`` and an optional ``id``) or a JSONL file of
the same. Each finished input appends one line to the output file::

    {"id": 7, "index": 7, "input": "...", "output": "...", "usage": {...}, "steps": 2, "error": null}

A failed input gets ``"output": null`` and ``"error": {"type": ..., "message": ...}``; the other
inputs go on. With ``resume=True`` the inputs that already have a successful line in the output
file are skipped, so a batch stopped by a crash or Ctrl-C continues where it stopped (a last line
cut short by the crash is discarded and that input runs again). Failed inputs run again on
resume and their new line is appended: when reading results, the last line for an id wins
(:func:`read_results` does this).

Errors no retry can fix (bad credentials, no such model, daily quota used up) stop the batch at
once and are raised: every line written so far stays, and ``resume=True`` continues later.

On the command line::

    agentkit batch my_agent.py:agent inputs.jsonl -o results.jsonl --concurrency 4 --resume
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pydantic_core

from ._progress import Progress
from ._scope import session_affinity
from ._sync import run_sync
from .agent import Agent
from .errors import (
    JOB_FATAL_ERRORS,
    AgentKitError,
    ConfigurationError,
)
from .messages import Usage

__all__ = [
    "BatchItem",
    "BatchReport",
    "add_batch_command",
    "batch_command",
    "load_agent",
    "read_inputs",
    "read_results",
    "run_batch",
    "run_batch_sync",
]

logger = logging.getLogger("agentkit.batch")


InputId = str | int


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its ``id`` (given, or its position), position and prompt."""

    id: InputId
    index: int
    input: str


@dataclass
class BatchReport:
    """What :func:`run_batch` did.

    ``total`` inputs, of which ``skipped`` were already done (resume), ``succeeded`` and
    ``failed`` ran now; ``usage`` sums the runs made now; ``output`` is the results file.
    """

    output: Path
    total: int
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)
    failed_ids: list[InputId] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no input failed in this run."""
        return self.failed == 0


# --- inputs -------------------------------------------------------------------------------------


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
    """The inputs of a batch, from a list or a JSONL file (one string or object per line).

    Blank lines are skipped. An item without ``id`` is known by its 0-based position. Ids must
    be unique.
    """
    items: list[BatchItem] = []
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        try:
            # utf-8-sig: files saved by some editors and spreadsheets start with a BOM.
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cannot read batch inputs {str(path)!r}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    f"{where} is not valid JSON ({exc.msg}); each line must be a JSON string or "
                    'an object like {"id": 1, "input": "..."}'
                ) from None
            items.append(_item(raw, len(items), where))
    else:
        for index, raw in enumerate(inputs):
            items.append(_item(raw, index, f"input {index}"))
    seen: dict[str, int] = {}
    for item in items:
        key = _key(item.id)
        if key in seen:
            raise ConfigurationError(
                f"inputs {seen[key]} and {item.index} have the same id {item.id!r}; "
                "ids must be unique so results can be matched to inputs"
            )
        seen[key] = item.index
    return items


def _key(item_id: Any) -> str:
    return json.dumps(item_id)


# --- results ------------------------------------------------------------------------------------


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                return  # a last line cut short: not a result
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s line %d is not valid JSON; ignored", path, number)
                continue
            if isinstance(record, dict) and "id" in record:
                yield record


def read_results(path: str | os.PathLike[str]) -> dict[InputId, dict[str, Any]]:
    """The results in a batch output file, by input id; the last line for an id wins."""
    results: dict[InputId, dict[str, Any]] = {}
    for record in _records(Path(path)):
        results[record["id"]] = record
    return results


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so new lines start on their own line."""
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with path.open("rb+") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
    logger.warning("%s ended with an unfinished line; it was removed", path)


def _prepare_output(path: Path, *, resume: bool, overwrite: bool) -> set[str]:
    """Check the output file; with ``resume``, the keys of the inputs already done."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    if resume:
        _drop_partial_line(path)
        return {_key(i) for i, r in read_results(path).items() if not r.get("error")}
    if not overwrite:
        raise ConfigurationError(
            f"the output file {str(path)!r} already exists; pass resume=True (--resume) to "
            "continue it, overwrite=True (--overwrite) to replace it, or choose another file"
        )
    return set()


def _open_output(path: Path, *, append: bool) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a" if append else "w", encoding="utf-8", newline="\n")


def _jsonable(value: Any) -> Any:
    return pydantic_core.to_jsonable_python(value, fallback=str)


def _error_record(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)}


# --- running ------------------------------------------------------------------------------------


async def run_batch(
    agent: Agent[Any],
    inputs: str | os.PathLike[str] | Sequence[Any],
    *,
    output: str | os.PathLike[str],
    concurrency: int = 4,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    deps: Any = None,
    max_steps: int | None = None,
) -> BatchReport:
    """Run ``agent`` on every input, appending one JSON line per finished input to ``output``.

    Args:
        agent: The agent; each input is one ``agent.run(input, deps=deps)``.
        inputs: A list of strings / ``{"id", "input"}`` objects, or a JSONL file of them.
        output: The JSONL results file, written as results arrive (in finishing order).
        concurrency: How many runs at once. The model client's ``rate_limit`` still applies.
        resume: Skip inputs that already have a successful result in ``output``.
        overwrite: Start ``output`` afresh if it exists. Without ``resume`` or ``overwrite``
            an existing output file is an error, so no result is lost by mistake.
        progress: A progress bar on stderr; ``None`` shows it when stderr is a terminal.
        deps: Passed to every run (reaches tools through ``ToolContext``).
        max_steps: Overrides the agent's ``max_steps`` for every run.

    Cost: the sum of each run's requests (one per agent step), for the inputs not skipped.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    if resume and overwrite:
        raise ConfigurationError("resume=True and overwrite=True contradict each other; pick one")
    items = read_inputs(inputs)
    path = Path(output)
    done = _prepare_output(path, resume=resume, overwrite=overwrite)
    todo = [item for item in items if _key(item.id) not in done]
    report = BatchReport(output=path, total=len(items), skipped=len(items) - len(todo))
    logger.info(
        "batch: %d inputs, %d already done, %d to run", report.total, report.skipped, len(todo)
    )
    handle = _open_output(path, append=resume)
    if not todo:
        handle.close()
        return report
    bar = Progress(progress, report.total, "batch", "input", initial=report.skipped)
    queue = iter(todo)
    with handle:

        async def worker() -> None:
            for item in queue:
                await _run_one(agent, item, handle, report, deps=deps, max_steps=max_steps)
                bar.advance(report.failed)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(todo)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            logger.warning(
                "batch stopped after %d of %d inputs; run again with resume=True to continue",
                report.skipped + report.succeeded + report.failed,
                report.total,
            )
            raise
        finally:
            bar.close()
    return report


async def _run_one(
    agent: Agent[Any],
    item: BatchItem,
    handle: IO[str],
    report: BatchReport,
    *,
    deps: Any,
    max_steps: int | None,
) -> None:
    record: dict[str, Any] = {"id": item.id, "index": item.index, "input": item.input}
    # One prompt-cache key per input: a rerun of the same input (--resume) reuses it.
    affinity = "input-" + hashlib.sha256(_key(item.id).encode()).hexdigest()[:24]
    try:
        with session_affinity(affinity):
            result = await agent.run(item.input, deps=deps, max_steps=max_steps)
    except JOB_FATAL_ERRORS:
        raise
    except Exception as exc:
        usage = exc.usage if isinstance(exc, AgentKitError) and exc.usage else Usage()
        record.update(output=None, usage=usage.model_dump(), steps=None, error=_error_record(exc))
        report.failed += 1
        report.failed_ids.append(item.id)
        logger.warning("batch input %r failed: %s: %s", item.id, type(exc).__name__, exc)
    else:
        usage = result.usage
        record.update(
            output=_jsonable(result.output),
            usage=usage.model_dump(),
            steps=result.steps,
            error=None,
        )
        report.succeeded += 1
    report.usage = report.usage + usage
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def run_batch_sync(
    agent: Agent[Any],
    inputs: str | os.PathLike[str] | Sequence[Any],
    *,
    output: str | os.PathLike[str],
    **options: Any,
) -> BatchReport:
    """:func:`run_batch` for synchronous code; Ctrl-C stops it cleanly (resume later)."""
    return run_sync(run_batch(agent, inputs, output=output, **options))


# --- command line -------------------------------------------------------------------------------


def load_agent(target: str) -> Agent[Any]:
    """The agent named by ``FILE.py:NAME`` or ``package.module:NAME`` (``NAME`` defaults to
    ``agent``). ``NAME`` may also be a function without arguments that returns the agent."""
    location, _, name = target.partition(":")
    name = name or "agent"
    if location.endswith(".py") or os.sep in location or "/" in location:
        path = Path(location)
        if not path.is_file():
            raise ConfigurationError(f"cannot load {target!r}: no such file {location!r}")
        module_name = f"_agentkit_target_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot load {target!r}: {location!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot load {target!r}: running {location!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot load {target!r}: importing {location!r} raised {type(exc).__name__}: {exc}"
            ) from exc
    if not hasattr(module, name):
        raise ConfigurationError(
            f"cannot load {target!r}: {location!r} defines no {name!r}; "
            "write FILE.py:NAME with the name of your Agent"
        )
    found = getattr(module, name)
    if not isinstance(found, Agent) and callable(found):
        found = found()
    if not isinstance(found, Agent):
        raise ConfigurationError(
            f"cannot load {target!r}: {name!r} is a {type(found).__name__}, not an Agent "
            "(or a function returning one)"
        )
    return found


def add_batch_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``batch`` to an ``argparse`` subparsers object; its handler is :func:`batch_command`
    (set as the ``handler`` default)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "batch",
        help="run an agent over many inputs (JSONL), saving results as they finish",
        description=(
            "Run an agent on every line of a JSONL file (a JSON string, or an object with "
            "'input' and an optional 'id') and append one JSON result per line to the output."
        ),
    )
    parser.add_argument("target", help="the agent, as FILE.py:NAME or package.module:NAME")
    parser.add_argument("inputs", help="the inputs file, one JSON string or object per line")
    parser.add_argument("-o", "--output", required=True, help="the results file (JSONL)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="runs at the same time (default: 4)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip inputs already done in the output file"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output file if it exists"
    )
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.set_defaults(handler=batch_command)
    return parser


def batch_command(args: argparse.Namespace) -> int:
    """Run ``agentkit batch`` with parsed arguments; returns the exit status.

    0 when every input succeeded, 1 when some failed, 2 on a usage error, 130 on Ctrl-C.
    """

    async def go(agent: Agent[Any]) -> BatchReport:
        try:
            return await run_batch(
                agent,
                args.inputs,
                output=args.output,
                concurrency=args.concurrency,
                resume=args.resume,
                overwrite=args.overwrite,
                progress=False if args.no_progress else None,
            )
        finally:
            aclose = getattr(agent.model, "aclose", None)
            if aclose is not None:
                await aclose()

    try:
        report = asyncio.run(go(load_agent(args.target)))
    except ConfigurationError as exc:
        sys.stderr.write(f"agentkit batch: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(
            f"agentkit batch: interrupted; results so far are in {args.output}. "
            "Run the same command with --resume to continue.\n"
        )
        return 130
    except AgentKitError as exc:
        sys.stderr.write(
            f"agentkit batch: stopped: {type(exc).__name__}: {exc}\n"
            f"Results so far are in {args.output}; fix the problem and rerun with --resume.\n"
        )
        return 1
    sys.stderr.write(
        f"agentkit batch: {report.succeeded} succeeded, {report.failed} failed, "
        f"{report.skipped} skipped; {report.usage.requests} requests, "
        f"{report.usage.total_tokens} tokens ({report.usage.cached_tokens} prompt tokens "
        f"from the cache); results in {report.output}\n"
    )
    return 0 if report.ok else 1
