"""Prompt mode (the schema's ``prompt`` shape), streamed and not, against the local wire server.

Every body goes through the ``wire`` fixture, which fails the test if one breaks the seed's
input schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentkit import (
    ConfigurationError,
    Message,
    ModelSettings,
    ResponseDone,
    StreamTruncatedError,
    TextDelta,
)
from agentkit.models import WorkersAI
from agentkit.testing import Reply, WireServer, schema_violations

Make = Callable[..., WorkersAI]


async def collect(events: Any) -> list[Any]:
    return [event async for event in events]


async def test_complete_stream_yields_text_then_the_whole_reply(
    wire: WireServer, workers_ai: Make
) -> None:
    wire.add(Reply.answer("Once upon a time there was a fox.", chunk_chars=5))
    async with workers_ai(wire) as model:
        events = await collect(
            model.complete_stream(
                "<|begin_of_text|>Tell a story",
                raw=True,
                lora="story-adapter",
                settings=ModelSettings(temperature=0.3, max_tokens=64),
            )
        )
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert isinstance(events[-1], ResponseDone)
    assert not any(isinstance(e, ResponseDone) for e in events[:-1])
    done = events[-1].response
    assert "".join(d.text for d in deltas) == done.text == "Once upon a time there was a fox."
    assert done.usage.total_tokens > 0
    body = wire.requests[0].body
    assert body == {
        "prompt": "<|begin_of_text|>Tell a story",
        "raw": True,
        "lora": "story-adapter",
        "temperature": 0.3,
        "max_tokens": 64,
        "stream": True,
    }


async def test_complete_stream_gives_the_events_of_stream(
    wire: WireServer, workers_ai: Make
) -> None:
    wire.add(Reply.answer("same words either way", chunk_chars=4))
    wire.add(Reply.answer("same words either way", chunk_chars=4))
    async with workers_ai(wire) as model:
        prompted = await collect(model.complete_stream("hello"))
        chatted = await collect(model.stream([Message.user("hello")], []))
    assert [type(e) for e in prompted] == [type(e) for e in chatted]
    assert [e.text for e in prompted[:-1]] == [e.text for e in chatted[:-1]]
    assert prompted[-1].response.text == chatted[-1].response.text
    assert "messages" not in wire.requests[0].body and "prompt" not in wire.requests[1].body


async def test_complete_stream_retries_before_its_first_event(
    wire: WireServer, workers_ai: Make
) -> None:
    wire.add(Reply.error(503), Reply.answer("after a retry"))
    async with workers_ai(wire) as model:
        events = await collect(model.complete_stream("hello"))
    assert events[-1].response.text == "after a retry"
    assert len(wire.requests) == 2


async def test_a_cut_prompt_stream_is_an_error(wire: WireServer, workers_ai: Make) -> None:
    wire.add(Reply.truncated("partial answer", after_events=2))
    async with workers_ai(wire, max_retries=0) as model:
        with pytest.raises(StreamTruncatedError):
            await collect(model.complete_stream("hello"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "1 to 131072"),
        ({"prompt": "x" * 131_073}, "1 to 131072"),
        ({"prompt": "hi", "lora": ""}, "lora"),
    ],
)
async def test_bad_prompt_arguments_are_refused_before_sending(
    wire: WireServer, workers_ai: Make, kwargs: dict[str, Any], match: str
) -> None:
    async with workers_ai(wire) as model:
        with pytest.raises(ConfigurationError, match=match):
            await collect(model.complete_stream(**kwargs))
        with pytest.raises(ConfigurationError, match=match):
            await model.complete(**kwargs)
    assert wire.requests == []


def test_prompt_bodies_match_the_seed_schema_and_never_mix_the_shapes() -> None:
    # What the server checks on every request above, shown directly: the prompt shape accepts
    # raw and lora, and a body with both a prompt and messages matches both shapes: refused.
    assert schema_violations({"prompt": "hi", "raw": True, "lora": "x", "stream": True}) == []
    assert schema_violations({"prompt": "hi", "messages": [{"role": "user", "content": "a"}]})
