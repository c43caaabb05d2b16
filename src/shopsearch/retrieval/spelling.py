"""Query spelling correction against the catalogue's own vocabulary, with SymSpell (symspellpy).

Shoppers misspell (``frrezer``), join words (``exteriorpaint``) and garble brands (``dewlap``). BM25
ignores a word that no product text uses, and an encoder sees unfamiliar sub-words; on Home Depot
`dev` 29% of the queries hold such a word. :class:`CatalogSpellCorrector` maps those words onto
catalogue words before retrieval, and :class:`SpellCorrectedRetriever` puts it in front of any
retriever (system specs ``bm25+spell``, ``dense+spell``, ``hybrid+spell``).

symspellpy generates the candidates (symmetric-delete edit-distance lookup and word segmentation,
Garbe 2012). Which words to touch and which candidate to pick is specific to product search, so it
is written here:

- a word is left as typed when a product text uses it, when it is shorter than ``min_length``
  letters (``qtr``, ``gal``), when it holds digits (model numbers and sizes are never tokens here:
  only runs of letters are looked at), or when it is a common English word
  (``english_min_count`` or more in symspellpy's bundled English frequency list): the catalogue
  may simply not use ``inches`` or ``winsome``, and the encoder knows them;
- otherwise the candidates are the catalogue words within one edit (words under 6 letters) or
  ``max_edit_distance`` edits, ranked by distance, then by whether the candidate follows or
  precedes a neighbouring query word somewhere in the catalogue (``meld wen`` -> ``jeld wen``),
  then by keeping the first letter, then by catalogue frequency;
- a word with no candidate is split into catalogue words (``carpetshampoo`` -> ``carpet
  shampoo``) when every part is a catalogue word of at least 3 letters.
"""

from __future__ import annotations

import importlib.resources
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from symspellpy import SymSpell, Verbosity

from shopsearch.retrieval.base import Retriever, SearchResult

_WORD = re.compile(r"[a-z0-9]+")  # catalogue tokens: a word with digits is a word the corrector never proposes
_LETTERS = re.compile(r"[A-Za-z]+")  # query words the corrector may change
PRODUCT_TEXT_COLUMNS = ("title", "brand", "color", "category", "vertical")
_ENGLISH = "frequency_dictionary_en_82_765.txt"  # ships with symspellpy (MIT), Google Books n-gram counts


@lru_cache(maxsize=1)
def english_word_counts() -> dict[str, int]:
    """symspellpy's bundled English unigram counts (82,765 words)."""
    counts: dict[str, int] = {}
    with importlib.resources.files("symspellpy").joinpath(_ENGLISH).open(encoding="utf-8") as f:
        for line in f:
            word, count = line.split()
            counts[word] = int(count)
    return counts


@dataclass(frozen=True)
class SpellCorrection:
    """A query as typed, as corrected, and each word changed (``(typed, replacement)``, in order)."""

    original: str
    corrected: str
    changes: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class CatalogSpellCorrector:
    """Corrects query words the catalogue never uses to catalogue words (see the module docstring).

    >>> c = CatalogSpellCorrector(["Cordless Drill Kit", "Chest Freezer in White"])
    >>> c.correct("white frrezer")
    'white freezer'
    """

    def __init__(
        self,
        texts: Iterable[str],
        *,
        min_length: int = 4,
        max_edit_distance: int = 2,
        english_min_count: int | None = 1_000_000,
    ) -> None:
        if min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {min_length}")
        if max_edit_distance not in (1, 2, 3):
            raise ValueError(f"max_edit_distance must be 1, 2 or 3, got {max_edit_distance}")
        self.min_length = min_length
        self.max_edit_distance = max_edit_distance
        self.english_min_count = english_min_count
        self.counts: Counter[str] = Counter()
        self.bigrams: Counter[tuple[str, str]] = Counter()
        for text in texts:
            words = _WORD.findall(str(text).lower())
            self.counts.update(words)
            self.bigrams.update(itertools.pairwise(words))
        self._symspell = SymSpell(max_dictionary_edit_distance=max_edit_distance, prefix_length=7)
        for word, count in self.counts.items():
            if word.isalpha():
                self._symspell.create_dictionary_entry(word, count)
        self._english = english_word_counts() if english_min_count is not None else {}

    @classmethod
    def from_products(cls, products: pd.DataFrame, columns: Sequence[str] = PRODUCT_TEXT_COLUMNS, **options: Any) -> CatalogSpellCorrector:
        """From a product table's text columns (an index's ``products.parquet``, which keeps the display
        fields but no rendered text); missing columns and empty values are skipped."""
        present = [c for c in columns if c in products]
        texts = products[present].astype("string").fillna("").agg(" ".join, axis=1) if present else []
        return cls(texts, **options)

    @property
    def vocabulary_size(self) -> int:
        return len(self.counts)

    def _keep(self, word: str) -> bool:
        return (
            word in self.counts
            or len(word) < self.min_length
            or (self.english_min_count is not None and self._english.get(word, 0) >= self.english_min_count)
        )

    def _context(self, candidate: str, left: str, right: str) -> bool:
        return self.bigrams.get((left, candidate), 0) > 0 or self.bigrams.get((candidate, right), 0) > 0

    def correct_word(self, word: str, left: str = "", right: str = "") -> str:
        """The replacement for one lower-case ``word`` between neighbours ``left`` and ``right``
        (``word`` itself when it stays)."""
        if self._keep(word):
            return word
        distance = 1 if len(word) < 6 else self.max_edit_distance
        suggestions = self._symspell.lookup(word, Verbosity.ALL, max_edit_distance=distance)
        if suggestions:
            best = min(
                suggestions,
                key=lambda s: (s.distance, not self._context(s.term, left, right), s.term[0] != word[0], -s.count),
            )
            return str(best.term)
        parts = str(self._symspell.word_segmentation(word, max_edit_distance=0).segmented_string).split()
        if len(parts) > 1 and all(len(p) >= 3 and p in self.counts for p in parts):
            return " ".join(parts)
        return word

    def explain(self, query: str) -> SpellCorrection:
        """The corrected query and the words changed; text between words (digits, punctuation) is kept."""
        matches = list(_LETTERS.finditer(query))
        lower = [m.group(0).lower() for m in matches]
        pieces: list[str] = []
        changes: list[tuple[str, str]] = []
        end = 0
        for i, m in enumerate(matches):
            left = lower[i - 1] if i > 0 else ""
            right = lower[i + 1] if i + 1 < len(lower) else ""
            replacement = self.correct_word(lower[i], left, right)
            pieces.append(query[end : m.start()])
            if replacement == lower[i]:
                pieces.append(m.group(0))  # as typed, case included
            else:
                pieces.append(replacement)
                changes.append((m.group(0), replacement))
            end = m.end()
        pieces.append(query[end:])
        return SpellCorrection(query, "".join(pieces), tuple(changes))

    def correct(self, query: str) -> str:
        return self.explain(query).corrected

    def correct_many(self, queries: Sequence[str]) -> list[str]:
        return [self.correct(q) for q in queries]


class SpellCorrectedRetriever:
    """Any retriever, searched with spelling-corrected queries: ``bm25+spell``, ``hybrid+spell``.

    It scores given candidates (``score_candidates``: AUC, the re-rank protocol) exactly when the
    retriever it wraps does, with the corrected queries too.
    """

    def __init__(self, inner: Retriever, corrector: CatalogSpellCorrector, name: str | None = None) -> None:
        self.inner = inner
        self.corrector = corrector
        self.name = name or f"{inner.name}+spell"
        # an instance attribute, not a method: callers probe callable(getattr(r, "score_candidates"))
        if callable(getattr(inner, "score_candidates", None)):
            self.score_candidates = self._score_candidates

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        return self.inner.search(self.corrector.correct_many(queries), k)

    def _score_candidates(self, queries: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return self.inner.score_candidates(self.corrector.correct_many(queries), candidates)  # type: ignore[attr-defined]
