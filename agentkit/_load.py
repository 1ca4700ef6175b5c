"""Find the agent a command line names: ``FILE.py:NAME`` or ``package.module:NAME``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from .agent import Agent
from .errors import ConfigurationError

__all__ = ["load_agent"]


def _where(exc: BaseException) -> str:
    """Where the user's code failed: the traceback's own frames (no import machinery)."""
    if isinstance(exc, SyntaxError):
        # File, line, the line itself and a caret under the fault.
        return "".join(traceback.format_exception_only(exc)).rstrip()
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen") and frame.filename != __file__
    ]
    return "".join(traceback.format_list(frames[-5:])).rstrip()


def _failed(target: str, doing: str, exc: BaseException) -> ConfigurationError:
    where = _where(exc)
    return ConfigurationError(
        f"cannot load {target!r}: {doing} raised {type(exc).__name__}: {exc}"
        + (f"\n{where}" if where else "")
    )


def _run_file(target: str, location: str) -> ModuleType:
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
        sys.modules.pop(module_name, None)
        raise _failed(target, f"running {location!r}", exc) from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def load_target(target: str, what: str) -> Any:
    """What ``FILE.py:NAME`` or ``package.module:NAME`` names (``NAME`` defaults to ``agent``).

    ``what`` completes the error for a missing name: "write FILE.py:NAME with the name of ...".
    """
    location, _, name = target.partition(":")
    name = name or "agent"
    if location.endswith(".py") or os.sep in location or "/" in location:
        module = _run_file(target, location)
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise _failed(target, f"importing {location!r}", exc) from exc
    if not hasattr(module, name):
        raise ConfigurationError(
            f"cannot load {target!r}: {location!r} defines no {name!r}; "
            f"write FILE.py:NAME with the name of {what}"
        )
    return getattr(module, name)


def load_agent(target: str) -> Agent[Any]:
    """The agent named by ``FILE.py:NAME`` or ``package.module:NAME`` (``NAME`` defaults to
    ``agent``). ``NAME`` may also be a function without arguments that returns the agent.

    A file that fails to run is a :class:`ConfigurationError` that shows where: file, line and
    the line's code (for a syntax error, the caret under the fault).
    """
    name = target.partition(":")[2] or "agent"
    found = load_target(target, "your Agent")
    if not isinstance(found, Agent) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise _failed(target, f"calling {name}()", exc) from exc
    if not isinstance(found, Agent):
        raise ConfigurationError(
            f"cannot load {target!r}: {name!r} is a {type(found).__name__}, not an Agent "
            "(or a function returning one)"
        )
    return found
