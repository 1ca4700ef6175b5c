"""JSON parsing that fails with a ``ValueError``, never a ``RecursionError``.

Text from a model or a server is untrusted: a hundred thousand nested brackets make the standard
parser recurse until Python gives up. Every place that parses such text goes through ``loads``, so
that nesting too deep is an ordinary, typed parse error the caller already handles.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONNestingError", "loads"]


class JSONNestingError(ValueError):
    """The text nests arrays or objects deeper than can be parsed."""


def loads(data: str | bytes | bytearray, *, strict: bool = True) -> Any:
    """``json.loads``, with nesting too deep for the parser raised as :class:`JSONNestingError`.

    Other malformed input raises ``json.JSONDecodeError`` (a ``ValueError``) as usual.
    ``strict=False`` accepts control characters written raw inside strings.
    """
    try:
        return json.loads(data, strict=strict)
    except RecursionError:
        raise JSONNestingError(
            "the JSON nests arrays or objects too deeply to parse (deeper than about "
            "900 levels); no real payload needs that"
        ) from None
