"""Token counting and text splitting shared by the patterns.

The splitter keeps paragraphs whole when it can, then sentences, then words, and cuts inside a
word only as a last resort. Every piece respects both a token budget (measured with a pluggable
counter) and a hard character limit (Workers AI rejects message content over 131,072 characters).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from ..errors import ConfigurationError

__all__ = [
    "MAX_CONTENT_CHARS",
    "TokenCounter",
    "approx_tokens",
    "split_paragraphs",
    "split_sentences",
    "split_text",
]

#: The longest message content Workers AI accepts, in characters.
MAX_CONTENT_CHARS = 131_072

TokenCounter = Callable[[str], int]
"""Anything that maps a text to its number of tokens, e.g. a real tokenizer's ``len(encode(s))``."""

_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends with . ! ? or an ellipsis, possibly followed by closing quotes or brackets,
# then whitespace. Look-behinds must have a fixed width, hence the alternation.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")


def approx_tokens(text: str) -> int:
    """Estimate the number of tokens in ``text`` without a tokenizer.

    English text runs at about four characters or three quarters of a word per token for Llama
    tokenizers; the larger of the two estimates is returned, so the count errs on the high side
    (chunks come out a little smaller than the budget, never much larger).
    """
    if not text:
        return 0
    words = len(_WORD.findall(text))
    return max(math.ceil(len(text) / 4), math.ceil(words * 4 / 3))


def split_paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text`` (separated by blank lines), stripped, empty ones dropped."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: a simple rule (end punctuation followed by whitespace)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_text(
    text: str,
    max_tokens: int,
    *,
    counter: TokenCounter = approx_tokens,
    max_chars: int = MAX_CONTENT_CHARS,
) -> list[str]:
    """Split ``text`` into pieces of at most ``max_tokens`` tokens and ``max_chars`` characters.

    Paragraphs are packed together while they fit; a paragraph that does not fit is split into
    sentences, a sentence into words, and a single over-long word into slices. Pieces are joined
    back with a blank line (between paragraphs) or a space (within a paragraph). Token counts of
    pieces are summed, which suits approximate and word-piece counters alike.
    """
    if max_tokens < 1:
        raise ConfigurationError(f"max_tokens must be at least 1, got {max_tokens}")
    if max_chars < 16:
        raise ConfigurationError(f"max_chars must be at least 16, got {max_chars}")
    return list(_pack(split_paragraphs(text), 0, max_tokens, counter, max_chars))


# Levels of splitting, coarsest first: 0 paragraphs, 1 sentences, 2 words (then character slices).
_SEPARATORS = ("\n\n", " ", " ")


def _split_oversized(piece: str, level: int) -> tuple[list[str], int]:
    """The finer pieces of ``piece`` (which sits at ``level``) and their level."""
    if level == 0:
        sentences = split_sentences(piece)
        if len(sentences) > 1:
            return sentences, 1
    return piece.split(), 2


def _pack(
    pieces: list[str],
    level: int,
    max_tokens: int,
    counter: TokenCounter,
    max_chars: int,
) -> Iterator[str]:
    separator = _SEPARATORS[level]
    current: list[str] = []
    tokens = 0
    chars = 0
    for piece in pieces:
        n_tokens = counter(piece)
        if n_tokens > max_tokens or len(piece) > max_chars:
            if current:
                yield separator.join(current)
                current, tokens, chars = [], 0, 0
            if level >= 2:
                yield from _slice(piece, max_tokens, counter, max_chars)
            else:
                finer, finer_level = _split_oversized(piece, level)
                yield from _pack(finer, finer_level, max_tokens, counter, max_chars)
            continue
        extra = len(separator) if current else 0
        if current and (tokens + n_tokens > max_tokens or chars + extra + len(piece) > max_chars):
            yield separator.join(current)
            current, tokens, chars, extra = [], 0, 0, 0
        current.append(piece)
        tokens += n_tokens
        chars += extra + len(piece)
    if current:
        yield separator.join(current)


def _slice(piece: str, max_tokens: int, counter: TokenCounter, max_chars: int) -> Iterator[str]:
    if len(piece) <= 1 or (counter(piece) <= max_tokens and len(piece) <= max_chars):
        yield piece
        return
    middle = len(piece) // 2
    yield from _slice(piece[:middle], max_tokens, counter, max_chars)
    yield from _slice(piece[middle:], max_tokens, counter, max_chars)
