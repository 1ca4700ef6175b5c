from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.patterns._chunking import (
    MAX_CONTENT_CHARS,
    approx_tokens,
    split_paragraphs,
    split_sentences,
    split_text,
)


def words(text: str) -> int:
    return len(text.split())


def test_approx_tokens_grows_with_text_and_is_zero_for_nothing() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("word") >= 1
    short = approx_tokens("The quick brown fox.")
    assert approx_tokens("The quick brown fox. " * 10) > 5 * short
    # Roughly four characters per token for plain English.
    assert 200 <= approx_tokens("abcd " * 200) <= 300


def test_paragraphs_and_sentences() -> None:
    text = 'First one. Second one!\n\n  \nThird? "Quoted." Last'
    assert split_paragraphs(text) == ["First one. Second one!", 'Third? "Quoted." Last']
    assert split_sentences('Third? "Quoted." Last') == ["Third?", '"Quoted."', "Last"]


def test_small_text_is_one_piece_unchanged() -> None:
    text = "One paragraph.\n\nAnother paragraph."
    assert split_text(text, 1000) == [text]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {i} has exactly six words." for i in range(10)]
    pieces = split_text("\n\n".join(paragraphs), 13, counter=words)
    assert pieces == ["\n\n".join(paragraphs[i : i + 2]) for i in range(0, 10, 2)]


def test_long_paragraph_splits_at_sentences_then_words() -> None:
    sentence = "This sentence has five words."
    paragraph = " ".join([sentence] * 6) + " " + " ".join(["long"] * 23) + "."
    pieces = split_text(paragraph, 10, counter=words)
    assert pieces[:3] == [f"{sentence} {sentence}"] * 3
    assert all(words(p) <= 10 for p in pieces)
    assert " ".join(pieces).split() == paragraph.split()


def test_character_limit_holds_even_for_one_huge_word() -> None:
    blob = "x" * 1000
    pieces = split_text(f"start\n\n{blob}\n\nend", 10_000, max_chars=64)
    assert all(len(p) <= 64 for p in pieces)
    assert "".join(pieces) == f"start{blob}end"


def test_default_character_limit_is_the_workers_ai_content_limit() -> None:
    text = "\n\n".join(["word " * 2000] * 100)  # about a million characters
    pieces = split_text(text, 10**9, counter=lambda s: 1)
    assert len(pieces) > 1
    assert all(len(p) <= MAX_CONTENT_CHARS for p in pieces)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab .!?\n"), min_size=0, max_size=80),
        min_size=0,
        max_size=12,
    ),
    st.integers(min_value=1, max_value=30),
)
def test_no_words_lost_and_limits_hold(parts: list[str], budget: int) -> None:
    text = "\n\n".join(parts)
    pieces = split_text(text, budget, counter=words, max_chars=40)
    assert all(len(p) <= 40 for p in pieces)
    assert all(words(p) <= budget for p in pieces)
    # Splitting never loses or reorders text (only whitespace may change, and over-long
    # words may be sliced).
    assert "".join("".join(pieces).split()) == "".join(text.split())
