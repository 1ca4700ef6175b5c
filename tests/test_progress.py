"""The progress bar: shown on request or on a terminal, silent otherwise."""

from __future__ import annotations

import io
import sys

import pytest

from agentkit._progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drive(progress: Progress) -> None:
    progress.grow(2)
    for _ in range(3):
        progress.advance(failed=1)
    progress.close()


def test_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    _drive(Progress(None, 1, "summarizing", "req"))
    assert stream.getvalue() == ""


@pytest.mark.parametrize("enabled", [None, True])
def test_shown_on_a_terminal_or_when_asked(monkeypatch: pytest.MonkeyPatch, enabled: bool) -> None:
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    _drive(Progress(enabled, 1, "summarizing", "req"))
    out = stream.getvalue()
    assert "summarizing" in out and "3/3" in out and "failed=1" in out


def test_never_shown_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    _drive(Progress(False, 1, "batch", "input"))
    assert stream.getvalue() == ""
