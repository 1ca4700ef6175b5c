"""A progress bar on stderr for long work (tqdm), shown only when stderr is a terminal."""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A tqdm bar, or nothing: ``enabled=None`` shows it only when stderr is a terminal.

    tqdm is imported only when a bar is shown, so it costs nothing otherwise.
    """

    def __init__(
        self, enabled: bool | None, total: int, description: str, unit: str, initial: int = 0
    ) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = None
        if enabled:
            tqdm = importlib.import_module("tqdm").tqdm
            self._bar = tqdm(
                total=total, initial=initial, desc=description, unit=unit, file=sys.stderr
            )

    def grow(self, n: int) -> None:
        """``n`` more units of work than first thought."""
        if self._bar is not None:
            self._bar.total += n
            self._bar.refresh()

    def advance(self, failed: int = 0) -> None:
        """One unit done; ``failed`` (if any) is shown next to the bar."""
        if self._bar is not None:
            if failed:
                self._bar.set_postfix(failed=failed, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
