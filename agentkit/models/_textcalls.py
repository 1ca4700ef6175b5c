"""Tool calls as models write them: wire shapes, and calls hidden in plain text.

Small Llama models (and servers that do not parse their output) often answer a tool step with
text instead of structured ``tool_calls``. :func:`recover_tool_calls` finds such calls:

- JSON objects ``{"name": ..., "parameters": {...}}`` (or ``"arguments"``), alone, in a list,
  in markdown fences or prose, around ``<|python_tag|>`` / ``<|eom_id|>`` / ``<|eot_id|>``;
- the pythonic form ``[get_weather(city='Paris'), get_time(tz="UTC")]``, parsed with
  :mod:`ast` (never evaluated: only literal values are accepted);
- ``<function=get_weather>{"city": "Paris"}</function>``.

Only names of offered tools count; anything else stays text. The parser never raises.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from .._json import JSONNestingError, loads
from ..messages import Message, ModelResponse, ToolCall, Usage, new_call_id

__all__ = [
    "MAX_LITERAL_CHARS",
    "build_response",
    "call_as_text",
    "normalize_calls",
    "parse_arguments",
    "read_arguments",
    "recover_tool_calls",
]

logger = logging.getLogger("agentkit.models")

_SPECIAL_TOKENS = re.compile(
    r"<\|(?:python_tag|eom_id|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text)\|>"
)
_FUNCTION_TAG = re.compile(r"<function=([A-Za-z0-9_.\-]+)>(.*?)(?:</function>|$)", re.DOTALL)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?|```")
_LEFTOVER = re.compile(r"^[\s\[\],;]*$")
_MAX_TEXT = 200_000  # characters examined for calls; longer answers are treated as text
_MAX_ATTEMPTS = 400  # decode attempts per text, so crafted input cannot make this quadratic
_DECODER = json.JSONDecoder()
_UNREADABLE: Any = object()

#: Longest tool-call arguments that are read as a Python literal when they are not JSON
#: (``ast.literal_eval`` needs several hundred times the text's size in memory).
MAX_LITERAL_CHARS = 64 * 1024


# --- wire shapes -------------------------------------------------------------------------------


def parse_arguments(value: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict: from a dict, a JSON string (even double-encoded) or nothing.

    Unreadable arguments give ``{}``; :func:`read_arguments` also says why.
    """
    return read_arguments(value)[0]


def read_arguments(value: Any) -> tuple[dict[str, Any], str | None]:
    """``(arguments, problem)``: the arguments as a dict, and why they could not be read.

    ``problem`` is ``None`` when they were read (or there were none). Otherwise it is a
    sentence for the model, and ``arguments`` is ``{}``. Text that is not JSON is read as a
    Python literal (``{'city': 'Paris'}``) only up to :data:`MAX_LITERAL_CHARS` characters.
    """
    for _ in range(3):
        if isinstance(value, dict):
            return value, None
        if value is None:
            return {}, None
        if not isinstance(value, str):
            return {}, f"the arguments must be one JSON object, got {_kind(value)}"
        text = value.strip()
        if not text:
            return {}, None
        try:
            value = loads(text)
        except JSONNestingError:
            return {}, ("the arguments nest arrays or objects too deeply to read")
        except ValueError:
            if len(text) > MAX_LITERAL_CHARS:
                logger.debug("tool-call arguments too long to read (%d characters)", len(text))
                return {}, (
                    f"the arguments are not valid JSON, and {len(text):,} characters is too long "
                    f"to read them another way (limit {MAX_LITERAL_CHARS:,})"
                )
            value = _literal(text)
            if value is _UNREADABLE:
                logger.debug("unreadable tool-call arguments (%d characters)", len(text))
                return {}, "the arguments are not valid JSON"
    if isinstance(value, dict):
        return value, None
    return {}, f"the arguments must be one JSON object, got {_kind(value)}"


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text encoded more than twice"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNREADABLE


def _wire_call(obj: Any) -> tuple[str | None, str, tuple[dict[str, Any], str | None]] | None:
    """``(id, name, (arguments, problem))`` from either wire shape, or None if not a call."""
    if not isinstance(obj, dict):
        return None
    function = obj.get("function")
    if isinstance(function, dict):
        name = function.get("name")
        arguments: Any = function.get("arguments", function.get("parameters"))
    else:
        name = obj.get("name")
        arguments = obj.get("arguments", obj.get("parameters"))
    if not isinstance(name, str) or not name:
        return None
    call_id = obj.get("id")
    return (
        (call_id if isinstance(call_id, str) and call_id else None),
        name,
        read_arguments(arguments),
    )


def normalize_calls(raw_calls: Any, taken: Collection[str] = ()) -> list[ToolCall]:
    """Wire tool calls (legacy or OpenAI shape) as :class:`ToolCall`.

    A server id is kept when present, unique within this reply and not in ``taken`` (the ids
    already used in the conversation); otherwise a fresh one is made.
    """
    if not isinstance(raw_calls, list) or not raw_calls:
        return []
    parsed = [c for c in map(_wire_call, raw_calls) if c is not None]
    seen: dict[str, int] = {}
    for call_id, _, _ in parsed:
        if call_id:
            seen[call_id] = seen.get(call_id, 0) + 1
    return [
        ToolCall(
            id=call_id
            if call_id and seen[call_id] == 1 and call_id not in taken
            else new_call_id(),
            name=name,
            arguments=arguments,
            arguments_error=problem,
        )
        for call_id, name, (arguments, problem) in parsed
    ]


def call_as_text(call: ToolCall) -> str:
    """A call written the way Llama writes JSON tool calls, for the model to read in history."""
    return json.dumps({"name": call.name, "parameters": call.arguments}, ensure_ascii=False)


# --- calls in text -----------------------------------------------------------------------------


def _parameter_names(tool: Any) -> list[str]:
    params = getattr(tool, "parameters", None)
    if isinstance(params, Mapping):
        props = params.get("properties")
        if isinstance(props, Mapping):
            return [str(k) for k in props]
    return []


def recover_tool_calls(
    text: str | None, tools: Iterable[Any] | Mapping[str, Any]
) -> tuple[list[ToolCall], str]:
    """Find tool calls written as text.

    ``tools`` is the offered tools (objects with ``.name``, and ``.parameters`` to map
    positional arguments) or a mapping ``name -> tool``. Returns the calls in the order they
    appear and the text that is left once they (and Llama's special tokens) are removed.
    When nothing is found, returns ``([], text)`` unchanged. Never raises.
    """
    if not text or not isinstance(text, str):
        return [], text or ""
    by_name = tools if isinstance(tools, Mapping) else {getattr(t, "name", ""): t for t in tools}
    if not by_name or len(text) > _MAX_TEXT:
        return [], text
    if not any(name and name in text for name in by_name):
        return [], text
    clean = _SPECIAL_TOKENS.sub(" ", text)
    found: list[tuple[int, int, ToolCall]] = []
    budget = [_MAX_ATTEMPTS]

    for match in _FUNCTION_TAG.finditer(clean):
        name = match.group(1)
        if name in by_name:
            args = _json_object(match.group(2).strip())
            if args is not None:
                found.append((match.start(), match.end(), ToolCall(name=name, arguments=args)))

    _find_json_calls(clean, by_name, found, budget)
    _find_pythonic_calls(clean, by_name, found, budget)
    if not found:
        return [], text
    found.sort(key=lambda item: item[0])
    pieces: list[str] = []
    position = 0
    for start, end, _ in found:
        pieces.append(clean[position:start])
        position = max(position, end)
    pieces.append(clean[position:])
    rest = _FENCE.sub("", "".join(pieces))
    rest = "" if _LEFTOVER.match(rest) else rest.strip()
    return [call for _, _, call in found], rest


def _overlaps(start: int, end: int, found: Sequence[tuple[int, int, ToolCall]]) -> bool:
    return any(start < e and s < end for s, e, _ in found)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text:
        return {}
    try:
        value, _ = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _as_text_call(obj: Any, by_name: Mapping[str, Any]) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    function = obj.get("function")
    source = function if isinstance(function, dict) else obj
    name = source.get("name")
    if not isinstance(name, str) or name not in by_name:
        return None
    extra = set(source) - {"name", "parameters", "arguments", "type", "id"}
    if extra:
        return None  # an object that merely has a "name" field, not a call
    arguments, problem = read_arguments(source.get("parameters", source.get("arguments")))
    return ToolCall(name=name, arguments=arguments, arguments_error=problem)


def _find_json_calls(
    text: str,
    by_name: Mapping[str, Any],
    found: list[tuple[int, int, ToolCall]],
    budget: list[int],
) -> None:
    position = 0
    length = len(text)
    while position < length and budget[0] > 0:
        start = _next_open(text, position)
        if start < 0:
            return
        if _overlaps(start, start + 1, found):
            position = start + 1
            continue
        budget[0] -= 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        items = value if isinstance(value, list) else [value]
        calls = [_as_text_call(item, by_name) for item in items]
        if items and all(call is not None for call in calls):
            found.extend((start, end, call) for call in calls if call is not None)
            position = end
        else:
            position = start + 1


def _next_open(text: str, position: int) -> int:
    brace = text.find("{", position)
    bracket = text.find("[", position)
    if brace < 0:
        return bracket
    if bracket < 0:
        return brace
    return min(brace, bracket)


def _call_pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted((re.escape(n) for n in names if n), key=len, reverse=True))
    return re.compile(r"(?<![\w.])(" + alternatives + r")\s*\(")


def _find_pythonic_calls(
    text: str,
    by_name: Mapping[str, Any],
    found: list[tuple[int, int, ToolCall]],
    budget: list[int],
) -> None:
    if "(" not in text:
        return
    for match in _call_pattern(by_name).finditer(text):
        start = match.start()
        if _overlaps(start, start + 1, found):
            continue
        closing = match.end() - 1
        while budget[0] > 0:
            closing = text.find(")", closing + 1)
            if closing < 0:
                break
            budget[0] -= 1
            call = _pythonic_call(text[start : closing + 1], by_name)
            if call is not None:
                found.append((start, closing + 1, call))
                break


def _pythonic_call(source: str, by_name: Mapping[str, Any]) -> ToolCall | None:
    if len(source) > MAX_LITERAL_CHARS:
        return None  # parsing would cost hundreds of times its size in memory: left as text
    try:
        node = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    name = node.func.id
    tool = by_name.get(name)
    if tool is None:
        return None
    arguments: dict[str, Any] = {}
    positional = _parameter_names(tool)
    if len(node.args) > len(positional):
        return None
    try:
        for param, arg in zip(positional, node.args, strict=False):
            arguments[param] = ast.literal_eval(arg)
        for keyword in node.keywords:
            if keyword.arg is None:
                return None
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None  # not a literal (a variable, an expression): not a call we can run
    return ToolCall(name=name, arguments=arguments)


# --- whole responses ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def cached_tokens(usage: dict[str, Any]) -> int:
    """Prompt tokens served from the provider's prompt cache: OpenAI's
    ``prompt_tokens_details.cached_tokens`` (Workers AI reports it the same way), or a flat
    ``cached_tokens``."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        return _int(details.get("cached_tokens"))
    return _int(usage.get("cached_tokens"))


def build_response(
    *,
    text: Any,
    raw_calls: Any,
    usage: Any,
    finish_reason: Any,
    tools: Sequence[Any],
    max_tokens: int | None,
    model_name: str,
    raw: Any,
    recover: bool = True,
    history: Sequence[Message] = (),
    taken: Collection[str] | None = None,
) -> ModelResponse:
    """One :class:`ModelResponse` from the parts of a reply, whatever wire it came from.

    Structured calls are taken as sent. Without them, calls hidden in the text are recovered
    (offered tools only) and the text around them is kept as ``text`` (``None`` if nothing is
    left), so it is not mistaken for a final answer. Call ids are unique within ``history`` (or
    ``taken``, the ids already used, when the caller keeps them).
    """
    answer = _text(text)
    if taken is None:  # the ids used in the history (a run passes the set it keeps)
        used: set[str] = set()
        if raw_calls and history:
            for message in history:
                if message.tool_calls:
                    used.update(call.id for call in message.tool_calls)
        taken = used
    calls = normalize_calls(raw_calls, taken)
    if not calls and recover and tools and answer:
        calls, rest = recover_tool_calls(answer, tools)
        if calls:
            answer = rest or None
    if calls and answer == "":
        answer = None
    prompt = completion = total = cached = 0
    if isinstance(usage, dict):
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        total = _int(usage.get("total_tokens")) or prompt + completion
        cached = cached_tokens(usage)
    reason = finish_reason if isinstance(finish_reason, str) and finish_reason else None
    if reason != "length":
        if max_tokens and completion >= max_tokens:
            reason = "length"
        elif calls:
            reason = "tool_calls"
        elif reason is None:
            reason = "stop"
    return ModelResponse(
        text=answer,
        tool_calls=calls,
        usage=Usage(
            requests=1,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            cached_tokens=cached,
        ),
        finish_reason=reason,
        model_name=model_name,
        raw=raw,
    )
