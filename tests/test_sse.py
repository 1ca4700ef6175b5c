import itertools
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.errors import ModelResponseError
from agentkit.models._sse import ServerSentEvent, SSEDecoder, StreamAccumulator, aiter_sse


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def test_decoder_reads_fields_comments_and_multiline_data() -> None:
    stream = (
        b": keep-alive comment\n"
        b"event: message\n"
        b"id: 7\n"
        b"data: first line\n"
        b"data:second line\n"
        b"\n"
        b'data: {"response": "hi"}\r\n\r\n'
        b"data: [DONE]\r\r"
    )
    assert decode([stream]) == [
        ServerSentEvent("first line\nsecond line", "message"),
        ServerSentEvent('{"response": "hi"}'),
        ServerSentEvent("[DONE]"),
    ]


def test_decoder_keeps_a_last_event_without_blank_line() -> None:
    assert decode([b"data: a\n\ndata: [DONE]"]) == [ServerSentEvent("a"), ServerSentEvent("[DONE]")]


def test_decoder_joins_a_utf8_character_split_across_chunks() -> None:
    data = 'data: {"response": "café ☕"}\n\n'.encode()
    cut = data.index("☕".encode()) + 1
    assert decode([data[:cut], data[cut:]]) == [ServerSentEvent('{"response": "café ☕"}')]


def test_decoder_does_not_split_crlf_across_chunks_into_two_lines() -> None:
    # "\r" at the end of one chunk and "\n" at the start of the next are one line end.
    assert decode([b"data: x\r", b"\n\r", b"\n"]) == [ServerSentEvent("x")]


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)


@st.composite
def stream_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    events = draw(st.lists(st.lists(_text, min_size=1, max_size=3), max_size=6))
    body = b""
    for lines in events:
        if draw(st.booleans()):
            body += b": comment" + newline
        for line in lines:
            body += b"data: " + line.encode() + newline
        body += newline
    body += b"data: [DONE]" + newline + newline
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=12)))
    return body, cuts


@settings(max_examples=150, deadline=None)
@given(stream_and_cuts())
def test_any_rechunking_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    body, cuts = case
    whole = decode([body])
    bounds = [0, *cuts, len(body)]
    pieces = [body[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(pieces) == whole
    assert decode([bytes([b]) for b in body]) == whole
    assert whole[-1].data == "[DONE]"


def test_accumulator_workers_ai_text_fragments_usage_and_finish() -> None:
    acc = StreamAccumulator()
    chunks = [
        {"response": "Let me ", "p": "abc"},
        {"response": "check.", "p": "abc"},
        {"tool_calls": [], "p": "x"},
        {
            "response": "",
            "tool_calls": [
                {"id": "t1", "type": "function", "index": 0, "function": {"name": "get_weather"}}
            ],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {
            "tool_calls": [
                {"index": 1, "id": "t2", "function": {"name": "get_time", "arguments": "{}"}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {"tool_calls": [{"index": 0, "id": None, "function": {"name": None, "arguments": None}}]},
        {"response": "", "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
        {"response": "", "finish_reason": "stop"},
    ]
    deltas = [acc.feed(c) for c in chunks]
    assert [d for d in deltas if d] == ["Let me ", "check."]
    assert acc.text == "Let me check."
    assert acc.wire_calls() == [
        {
            "id": "t1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "t2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert acc.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert acc.finish_reason == "stop"


def test_accumulator_legacy_whole_calls_and_openai_deltas() -> None:
    acc = StreamAccumulator()
    acc.feed(
        {"response": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
    )
    acc.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
    acc.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a"'}}
                        ]
                    },
                }
            ]
        }
    )
    acc.feed(
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]}
    )
    acc.feed({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    acc.feed(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    assert acc.text == "Hi"
    calls = acc.wire_calls()
    assert calls[0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert calls[1] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert acc.finish_reason == "tool_calls"
    assert acc.usage is not None and acc.usage["total_tokens"] == 3


def test_accumulator_ignores_odd_chunks_and_stringifies_non_text_responses() -> None:
    acc = StreamAccumulator()
    assert acc.feed([1, 2]) == ""
    assert acc.feed({"response": None}) == ""
    assert acc.feed({"response": 42}) == "42"
    assert acc.feed({"response": {"a": 1}}) == json.dumps({"a": 1})
    assert acc.feed({"tool_calls": ["junk", {"index": 0, "function": {"arguments": "{}"}}]}) == ""
    assert acc.wire_calls() == []  # a fragment that never got a name is not a call


async def test_aiter_sse_yields_a_last_event_without_its_blank_line() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: a\n\nda"
        yield b'ta: {"response": "b"}'

    events = [event async for event in aiter_sse(chunks())]
    assert events == [ServerSentEvent("a"), ServerSentEvent('{"response": "b"}')]


def test_a_bare_cr_ends_a_line_at_once() -> None:
    """A line ending in CR is complete when it arrives; an LF in the next chunk is not a line."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("a")]  # without waiting for more bytes
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n\r\n") == [ServerSentEvent("b")]  # CR LF, then an empty line


def test_one_event_is_capped_in_data_lines_and_in_an_unfinished_line() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    assert decoder.feed(b"data: " + b"x" * 60 + b"\n") == []
    with pytest.raises(ModelResponseError, match="max_event_bytes"):
        decoder.feed(b"data: " + b"y" * 60 + b"\n")
    endless = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(ModelResponseError, match="max_event_bytes"):
        for _ in range(100):
            endless.feed(b"z" * 64)
    small = SSEDecoder(max_event_bytes=100)
    for _ in range(50):  # many events, each under the cap
        assert small.feed(b"data: " + b"x" * 60 + b"\n\n") == [ServerSentEvent("x" * 60)]


def test_a_long_line_fed_byte_by_byte_is_one_line() -> None:
    decoder = SSEDecoder()
    line = b"data: " + b"q" * 20_000
    for byte in line:
        assert decoder.feed(bytes([byte])) == []
    assert decoder.feed(b"\n\n") == [ServerSentEvent("q" * 20_000)]
