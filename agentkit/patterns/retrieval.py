"""Retrieval: find passages in local documents and let an agent answer from them with citations.

- :class:`Passage` and the :class:`Retriever` protocol (``search(query, k) -> list[Passage]``);
- :class:`BM25Index`: a dependency-free BM25 index over text and markdown files, split into
  passages by headings and paragraphs, with ids like ``docs/agents.md#3``;
- :func:`retrieval_tool`: a retriever as an agent tool whose results carry the passage ids;
- :func:`retrieval_agent`: an agent that searches, answers from the passages and cites ``[id]``;
- :func:`check_citations`: which cited ids exist and which do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import inspect
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..messages import Message
from ._chunking import MAX_CONTENT_CHARS, approx_tokens, split_paragraphs, split_text

if TYPE_CHECKING:
    from ..agent import Agent
    from ..models.base import Model
    from ..tools import Tool

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "BM25Index",
    "CitationCheck",
    "Passage",
    "Retriever",
    "SearchResults",
    "check_citations",
    "cited_ids",
    "retrieval_agent",
    "retrieval_tool",
    "retrieved_ids",
    "split_passages",
]

logger = logging.getLogger("agentkit.retrieval")


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of a document.

    ``id`` is unique within a retriever and is what answers cite (``docs/agents.md#3``);
    ``source`` names the document it came from; ``score`` is the relevance to the last query
    (0 for passages that were not scored).
    """

    id: str
    text: str
    source: str
    score: float = 0.0


@runtime_checkable
class Retriever(Protocol):
    """Anything that finds the ``k`` passages most relevant to a query, best first.

    ``search`` may also be ``async def``; :func:`retrieval_tool` accepts both.
    """

    def search(self, query: str, k: int = 5) -> list[Passage]: ...


# --- BM25 -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+", re.UNICODE)
_STOP_WORDS_TEXT = """a an and are as at be but by can do does for from has have how i if in into is
it its me my not of on or so than that the their them then there these they this to was we were
what when where which who why will with you your"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("s", ""))


def _stem(word: str) -> str:
    """A light suffix strip so "retries", "retried" and "retry" meet (keeps 3+ letters)."""
    if word.endswith("ss"):
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def _terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed word terms, without common English stop words."""
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in _STOP_WORDS]


class BM25Index:
    """A small in-memory BM25 index (Okapi BM25, Lucene's always-positive idf).

    Build it from files with :meth:`from_files`, from texts with :meth:`from_texts`, or add
    passages yourself. Terms are lower-cased words; common English stop words are ignored and
    common suffixes stripped, so "agents" finds "agent" and "retried" finds "retries". ``k1`` and ``b`` are the usual BM25
    parameters.

    Example::

        index = BM25Index.from_files("docs")
        for passage in index.search("how do I retry a tool?", k=3):
            print(passage.id, passage.score)
    """

    def __init__(self, passages: Iterable[Passage] = (), *, k1: float = 1.5, b: float = 0.75):
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigurationError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = k1
        self.b = b
        self._passages: list[Passage] = []
        self._by_id: dict[str, int] = {}
        self._lengths: list[int] = []
        self._postings: dict[str, dict[int, int]] = {}
        self._total_length = 0
        for passage in passages:
            self.add(passage)

    # building ---------------------------------------------------------------------------

    def add(self, passage: Passage) -> None:
        """Index one passage. Its id must be new to this index."""
        if passage.id in self._by_id:
            raise ConfigurationError(
                f"duplicate passage id {passage.id!r}: every passage in an index needs its own id"
            )
        position = len(self._passages)
        self._passages.append(passage)
        self._by_id[passage.id] = position
        counts = Counter(_terms(passage.text))
        length = sum(counts.values())
        self._lengths.append(length)
        self._total_length += length
        for term, count in counts.items():
            self._postings.setdefault(term, {})[position] = count

    def add_text(self, source: str, text: str, *, max_passage_tokens: int = 400) -> list[Passage]:
        """Split ``text`` into passages (see :func:`split_passages`), index them, return them."""
        passages = split_passages(source, text, max_passage_tokens=max_passage_tokens)
        for passage in passages:
            self.add(passage)
        return passages

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], *, max_passage_tokens: int = 400) -> BM25Index:
        """An index over ``{source: text}``; passage ids are ``source#1``, ``source#2``, ..."""
        index = cls()
        for source, text in texts.items():
            index.add_text(source, text, max_passage_tokens=max_passage_tokens)
        return index

    @classmethod
    def from_files(
        cls,
        paths: str | Path | Iterable[str | Path],
        *,
        patterns: Sequence[str] = ("*.md", "*.markdown", "*.txt", "*.rst"),
        root: str | Path | None = None,
        max_passage_tokens: int = 400,
        encoding: str = "utf-8",
    ) -> BM25Index:
        """An index over text files; directories are searched recursively for ``patterns``.

        Each file's ``source`` is its path relative to ``root``. Without ``root``, a directory's
        files are named relative to the directory's parent (``docs/agents.md`` for the directory
        ``docs``) and a single file by its name, so ids do not depend on the working directory.
        """
        if isinstance(paths, str | Path):
            paths = [paths]
        index = cls()
        root_path = Path(root) if root is not None else None
        found = 0
        for given in paths:
            path = Path(given)
            if path.is_dir():
                files = sorted({f for pattern in patterns for f in path.rglob(pattern)})
                base = root_path or path.resolve().parent
            elif path.is_file():
                files = [path]
                base = root_path or path.resolve().parent
            else:
                raise ConfigurationError(f"cannot index {str(path)!r}: no such file or directory")
            for file in files:
                resolved = file.resolve()
                try:
                    source = resolved.relative_to(base.resolve()).as_posix()
                except ValueError:
                    source = file.as_posix()
                index.add_text(
                    source,
                    file.read_text(encoding=encoding, errors="replace"),
                    max_passage_tokens=max_passage_tokens,
                )
                found += 1
        logger.debug("indexed %d passages from %d files", len(index), found)
        return index

    # reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._passages)

    def __contains__(self, passage_id: object) -> bool:
        return passage_id in self._by_id

    @property
    def passages(self) -> list[Passage]:
        """Every indexed passage, in the order added."""
        return list(self._passages)

    def get(self, passage_id: str) -> Passage | None:
        """The passage with this id, or ``None``."""
        position = self._by_id.get(passage_id)
        return None if position is None else self._passages[position]

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """The ``k`` passages that best match ``query``, best first, with their BM25 ``score``.

        Passages sharing no term with the query are not returned, so the list may be shorter
        than ``k`` (or empty). Ties keep the order in which passages were added.
        """
        if k < 1:
            raise ConfigurationError(f"k must be at least 1, got {k}")
        n = len(self._passages)
        if n == 0:
            return []
        average = self._total_length / n or 1.0
        scores: dict[int, float] = {}
        for term in set(_terms(query)):
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            for position, tf in postings.items():
                norm = self.k1 * (1 - self.b + self.b * self._lengths[position] / average)
                scores[position] = scores.get(position, 0.0) + idf * tf * (self.k1 + 1) / (
                    tf + norm
                )
        best = heapq.nsmallest(k, scores.items(), key=lambda item: (-item[1], item[0]))
        return [
            dataclasses.replace(self._passages[position], score=round(score, 4))
            for position, score in best
        ]


# --- passage splitting ------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _sections(text: str) -> list[tuple[str, str]]:
    """Markdown ``(heading, body)`` sections; text before the first heading has heading ``""``.

    Lines inside fenced code blocks are never taken for headings.
    """
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and _HEADING.match(line):
            sections.append((line.strip(), []))
        else:
            sections[-1][1].append(line)
    return [(heading, "\n".join(body).strip()) for heading, body in sections]


def split_passages(source: str, text: str, *, max_passage_tokens: int = 400) -> list[Passage]:
    """Split one document into passages with ids ``source#1``, ``source#2``, ...

    Markdown headings start new passages; a heading with no text of its own is joined to the
    next section. A section longer than ``max_passage_tokens`` (approximate tokens) is split by
    paragraphs and sentences, and each piece keeps the heading so it still reads in context.
    Plain text without headings is split by paragraphs.
    """
    pieces: list[str] = []
    pending_headings: list[str] = []
    for heading, body in _sections(text):
        if not body:
            if heading:
                pending_headings.append(heading)
            continue
        title = "\n".join([*pending_headings, heading]).strip()
        pending_headings = []
        budget = max(50, max_passage_tokens - approx_tokens(title))
        max_chars = MAX_CONTENT_CHARS // 4
        if not title:
            pieces.extend(split_text(body, max_passage_tokens, max_chars=max_chars))
            continue
        for part in split_text(body, budget, max_chars=max_chars):
            pieces.append(f"{title}\n\n{part}")
    if pending_headings:
        pieces.append("\n".join(pending_headings))
    if not pieces and split_paragraphs(text):
        pieces = [text.strip()]
    return [
        Passage(id=f"{source}#{number}", text=piece, source=source)
        for number, piece in enumerate(pieces, start=1)
    ]


# --- the tool ---------------------------------------------------------------------------------


class SearchResults:
    """What :func:`retrieval_tool` returns: the passages found, shown to the model as text.

    ``str()`` gives the text the model reads: each passage under its ``[id]``, so the model can
    cite it. ``passages`` keeps the :class:`Passage` objects (the tool result's ``value``).
    """

    def __init__(self, query: str, passages: Sequence[Passage], *, max_chars: int | None = None):
        self.query = query
        self.passages = list(passages)
        self.max_chars = max_chars

    @property
    def ids(self) -> list[str]:
        """The ids of the passages found, best first."""
        return [p.id for p in self.passages]

    def __str__(self) -> str:
        if not self.passages:
            return f"No passages found for {self.query!r}. Try a search with other words."
        blocks = [
            f"Found {len(self.passages)} passages for {self.query!r}. "
            "Cite each fact you use with its id in square brackets, e.g. "
            f"[{self.passages[0].id}]."
        ]
        for passage in self.passages:
            text = passage.text
            if self.max_chars is not None and len(text) > self.max_chars:
                text = text[: self.max_chars].rstrip() + " ..."
            blocks.append(f"[{passage.id}]\n{text}")
        return "\n\n".join(blocks)

    def __repr__(self) -> str:
        return f"SearchResults(query={self.query!r}, ids={self.ids!r})"


def retrieval_tool(
    retriever: Retriever,
    k: int = 4,
    *,
    name: str = "search_documents",
    description: str | None = None,
    max_chars_per_passage: int | None = 2000,
) -> Tool:
    """A tool that searches ``retriever`` and returns the ``k`` best passages with their ids.

    The model calls it with one argument, ``query``. The result's text lists each passage under
    its ``[id]``; the result's value is a :class:`SearchResults`. A synchronous ``search`` runs
    in a worker thread so a slow retriever never blocks the event loop; an ``async`` one is
    awaited. Passages longer than ``max_chars_per_passage`` are cut for the model.
    """
    from ..tools import Tool

    if k < 1:
        raise ConfigurationError(f"k must be at least 1, got {k}")
    search_fn = retriever.search

    async def search(query: str) -> SearchResults:
        """Search the documents for passages about a topic.

        Args:
            query: A few keywords or a short question describing what to look for.
        """
        if inspect.iscoroutinefunction(search_fn):
            found = await search_fn(query, k)
        else:
            found = await asyncio.to_thread(search_fn, query, k)
            if inspect.isawaitable(found):
                found = await found
        return SearchResults(query, list(found)[:k], max_chars=max_chars_per_passage)

    return Tool.from_function(
        search,
        name=name,
        description=description
        or "Search the documents and return the most relevant passages, each with an id to cite.",
    )


# --- citations --------------------------------------------------------------------------------

_BRACKETS = re.compile(r"\[([^\[\]\n]{1,300})\](?!\()")
_RESULT_ID = re.compile(r"^\[([^\[\]\s]+)\]$", re.MULTILINE)
# Small models often label their citations: [Source: docs/a.md#2], [id: docs/a.md#2].
_CITATION_LABEL = re.compile(r"^(?:sources?|ids?|refs?|passages?|see)\s*:\s*", re.IGNORECASE)


def cited_ids(answer: str) -> list[str]:
    """The ids cited in ``answer`` as ``[id]`` or ``[id1, id2]``, first occurrence order.

    A label small models add is ignored (``[Source: docs/a.md#2]``). Markdown links
    (``[text](url)``) are not citations; bracketed text containing spaces is not taken for an id.
    """
    found: dict[str, None] = {}
    for match in _BRACKETS.finditer(answer):
        for part in re.split(r"[,;]", _CITATION_LABEL.sub("", match.group(1).strip())):
            candidate = _CITATION_LABEL.sub("", part.strip()).strip()
            if candidate and not any(ch.isspace() for ch in candidate):
                found.setdefault(candidate, None)
    return list(found)


@dataclass(frozen=True)
class CitationCheck:
    """The outcome of :func:`check_citations`.

    ``cited`` lists every id the answer cites; ``valid`` those that exist, ``unknown`` those
    that do not. ``ok`` is true when the answer cites at least one id and every id exists.
    """

    cited: list[str]
    valid: list[str]
    unknown: list[str]

    @property
    def ok(self) -> bool:
        return bool(self.cited) and not self.unknown


def check_citations(answer: str, known: BM25Index | Iterable[Passage | str]) -> CitationCheck:
    """Check that every ``[id]`` cited in ``answer`` names a known passage.

    ``known`` is an index (any id in it counts), or the passages / ids that should count: pass
    ``retrieved_ids(result.messages)`` to accept only the passages the agent actually saw.
    """
    if isinstance(known, BM25Index):
        exists = known.__contains__
    else:
        ids = {item.id if isinstance(item, Passage) else item for item in known}
        exists = ids.__contains__
    cited = cited_ids(answer)
    return CitationCheck(
        cited=cited,
        valid=[c for c in cited if exists(c)],
        unknown=[c for c in cited if not exists(c)],
    )


def retrieved_ids(messages: Iterable[Message], *, tool_name: str | None = None) -> list[str]:
    """The passage ids shown to the model by :func:`retrieval_tool` in a transcript.

    Reads the tool messages (only those of ``tool_name`` when given) for ``[id]`` header lines.
    """
    found: dict[str, None] = {}
    for message in messages:
        if message.role != "tool" or message.is_error:
            continue
        if tool_name is not None and message.name != tool_name:
            continue
        for match in _RESULT_ID.finditer(message.content):
            found.setdefault(match.group(1), None)
    return list(found)


# --- the agent --------------------------------------------------------------------------------

DEFAULT_SYSTEM_PROMPT = """\
You answer questions using only the documents you can search with the {tool} tool.
1. Call {tool} with a short search query. Search again with other words if nothing fits.
2. Answer only from the passages it returns. If they do not contain the answer, say that \
the documents do not say.
3. After each fact, cite the id of the passage it comes from in square brackets, exactly as \
shown in the results, for example [{example}]. Never invent an id."""


def retrieval_agent(
    model: Model,
    retriever: Retriever,
    *,
    k: int = 4,
    system_prompt: str | None = None,
    tool_name: str = "search_documents",
    max_steps: int = 6,
    tools: Sequence[Tool] = (),
    **agent_options: Any,
) -> Agent[str]:
    """An :class:`~agentkit.agent.Agent` that searches ``retriever`` and answers with citations.

    The agent gets :func:`retrieval_tool` (plus any extra ``tools``) and a system prompt that
    asks for ``[id]`` citations; check them with :func:`check_citations`. Each run costs one
    model request per step: usually two (search, then answer), at most ``max_steps``. Other
    keyword arguments go to ``Agent``.
    """
    from ..agent import Agent

    search = retrieval_tool(retriever, k, name=tool_name)
    prompt = system_prompt or DEFAULT_SYSTEM_PROMPT.format(tool=tool_name, example="guide.md#2")
    return Agent(
        model,
        [search, *tools],
        system_prompt=prompt,
        max_steps=max_steps,
        **agent_options,
    )
