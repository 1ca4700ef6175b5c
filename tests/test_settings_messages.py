import pytest

from agentkit import ConfigurationError, Message, ModelSettings, ToolCall, ToolResult, Usage
from agentkit.settings import DEFAULT_MAX_TOKENS


def test_settings_default_max_tokens_is_sent() -> None:
    assert ModelSettings().to_request() == {"max_tokens": DEFAULT_MAX_TOKENS}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 5.1),
        ("temperature", -0.1),
        ("top_p", 2.5),
        ("top_k", 0),
        ("top_k", 51),
        ("seed", 0),
        ("seed", 10_000_000_000),
        ("repetition_penalty", 3),
        ("frequency_penalty", -2.1),
        ("presence_penalty", 2.01),
        ("max_tokens", 0),
    ],
)
def test_settings_out_of_range_names_field_and_value(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError) as info:
        ModelSettings(**{field: value})
    assert field in str(info.value)
    assert repr(value) in str(info.value)


def test_settings_unknown_field_lists_allowed() -> None:
    with pytest.raises(ConfigurationError, match="allowed settings: max_tokens, temperature"):
        ModelSettings(temprature=0.2)


def test_settings_merge_prefers_explicit_fields() -> None:
    base = ModelSettings(temperature=0.2, top_k=10)
    merged = base.merge(ModelSettings(top_k=5))
    assert merged.temperature == 0.2
    assert merged.top_k == 5
    assert merged.max_tokens == DEFAULT_MAX_TOKENS
    assert base.merge(None) is base


def test_usage_adds_every_field() -> None:
    total = Usage(requests=1, prompt_tokens=2, completion_tokens=3, total_tokens=5) + Usage(
        requests=1, prompt_tokens=1, completion_tokens=1, total_tokens=2, tool_calls=4
    )
    assert total == Usage(
        requests=2, prompt_tokens=3, completion_tokens=4, total_tokens=7, tool_calls=4
    )


def test_tool_message_links_call_and_result() -> None:
    call = ToolCall(name="add", arguments={"a": 1})
    msg = Message.tool(ToolResult(content="3", value=3), call=call)
    assert (msg.role, msg.tool_call_id, msg.name, msg.content) == ("tool", call.id, "add", "3")
    assert "value" not in msg.model_dump()
    assert call.id.startswith("call_") and call.id != ToolCall(name="add").id


def test_transcript_round_trips_through_json() -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1, "b": [1, 2]})
    history = [
        Message.user("hi"),
        Message.assistant(None, [call]),
        Message.tool(ToolResult(content="ok"), call=call),
    ]
    dumped = [m.model_dump_json() for m in history]
    assert [Message.model_validate_json(d) for d in dumped] == history
