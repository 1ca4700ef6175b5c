"""Suite-wide checks and fixtures.

- Every ``agentkit`` log record of the whole suite is produced at DEBUG and scanned for the test
  token (:data:`_secrets.SECRET_TOKEN`): a test whose logs contain it fails.
- ``wire``: a :class:`~agentkit.testing_server.WireServer` that demands the test token and
  fails the test if any request body broke the Workers AI input schema.
- ``workers_ai``: builds a ``WorkersAI`` model for a server, with fast retries.
- ``check_transcript``: asserts that a transcript lost nothing and answers every call once.
- With ``CI`` set, hypothesis runs derandomized (the same examples every run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _secrets import SECRET_TOKEN, leaks, record_texts
from hypothesis import settings

from agentkit.messages import Message
from agentkit.models import WorkersAI
from agentkit.testing_server import WireServer

# In CI, property tests draw the same examples on every run, so a result does not depend on
# luck; locally they explore new examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


class SecretScanner(logging.Handler):
    """Scans each record as it is emitted (arguments may change later); keeps only leaks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0
        self.leaked: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        found = leaks(record_texts(record))
        if found:
            self.leaked.append(f"{record.name}:{record.lineno}: {found[0]}")


_scanner = SecretScanner()


@pytest.fixture(scope="session", autouse=True)
def _agentkit_logs_at_debug() -> Iterator[SecretScanner]:
    logger = logging.getLogger("agentkit")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(_scanner)
    try:
        yield _scanner
    finally:
        logger.removeHandler(_scanner)
        logger.setLevel(level)


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    before = len(_scanner.leaked)
    yield
    new = _scanner.leaked[before:]
    assert not new, f"the API token appeared in agentkit logs: {new}"


@pytest.fixture
def secret_scanner() -> SecretScanner:
    """The suite's log scanner (``records`` counts what it saw, ``leaked`` what leaked)."""
    return _scanner


@pytest.fixture
def wire() -> Iterator[WireServer]:
    """A local Workers AI server that requires the test token and checks every request body."""
    with WireServer(api_token=SECRET_TOKEN) as server:
        yield server
        assert server.violations == [], server.violations


@pytest.fixture
def workers_ai() -> Callable[..., WorkersAI]:
    """``workers_ai(server, **options)``: a model for ``server`` with tiny backoffs."""

    def make(server: WireServer, **options: Any) -> WorkersAI:
        settings: dict[str, Any] = {
            "account_id": "acct",
            "api_token": SECRET_TOKEN,
            "base_url": server.base_url,
            "backoff_base": 0.001,
            "backoff_max": 0.004,
            "max_retries": 2,
            "timeout": 5.0,
        }
        settings.update(options)
        return WorkersAI(**settings)

    return make


def assert_transcript_intact(
    messages: list[Message],
    prompt: str | None = None,
    *,
    tool_results: int | None = None,
    open_tail: bool = False,
) -> None:
    """The transcript starts with the prompt and answers every recorded call exactly once.

    Each call id is unique; each tool message answers a call of the nearest assistant turn
    before it; ``tool_results`` (when given) is how many tool messages there must be.
    ``open_tail=True`` allows the last turn's calls to wait for a resume (a run stopped by
    ``on_tool_error="raise"``).
    """
    assert messages, "the transcript is empty"
    first = next(m for m in messages if m.role != "system")
    assert first.role == "user", messages
    if prompt is not None:
        assert first.content == prompt
    ids = [call.id for m in messages for call in m.tool_calls]
    assert len(ids) == len(set(ids)), f"repeated call ids: {ids}"
    open_calls: set[str] = set()
    answered: list[str] = []
    for message in messages:
        if message.role == "assistant":
            assert not open_calls, f"calls left unanswered before a new turn: {open_calls}"
            open_calls = {call.id for call in message.tool_calls}
        elif message.role == "tool":
            assert message.tool_call_id in open_calls, f"a result for no open call: {message}"
            open_calls.discard(message.tool_call_id)
            answered.append(message.tool_call_id)
        else:
            assert not open_calls, f"calls left unanswered before a {message.role} message"
    if not open_tail:
        assert not open_calls, f"calls left unanswered at the end: {open_calls}"
        assert sorted(answered) == sorted(ids)
    if tool_results is not None:
        assert len(answered) == tool_results, messages


@pytest.fixture
def check_transcript() -> Callable[..., None]:
    """:func:`assert_transcript_intact`, for tests."""
    return assert_transcript_intact
