"""Keyword pseudo-queries for the catalogue products that no judged query reaches.

Judgments cover a fraction of a catalogue (Home Depot ``train``: 29,602 of 54,667 products are a
positive of some query), and a dual encoder learns the words of the products it is shown. Corpus-side
pseudo-queries give the rest a training pair (doc2query, Nogueira et al. 2019; GPL, Wang et al. 2022,
generate them with a seq2seq model). Shop queries are mostly a few title words ("dewalt shank jig
saws", "chrome shower head"), so here a pseudo-query is a handful of the product's own title words,
sampled by how often each word is typed by shoppers who find a product that carries it:

    r(w) = (n_q(w) + k * g) / (n_t(w) + k)

``n_t(w)``: judged positive pairs whose product text holds the (stemmed) word ``w``; ``n_q(w)``: those
whose query holds it too; ``g``: the same share over all words (the prior mean), ``k``: the prior's
strength (a beta-binomial posterior mean, so rare words fall back to ``g``). The query's length is
drawn from the judged queries' word counts; the words keep their order in the title.
No library samples queries from a learnt per-word model on a pairs table, so it is written here; the
rows are ordinary stage-1 pairs (``source="pseudo"``) and go through mining like the others.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import Stemmer

from shopsearch.training.pairs import finish_pairs, normalize_query, synthetic_query_id

# Title words as shoppers type them: sizes and codes keep their inner punctuation ("1/2", "14-3").
_WORD = re.compile(r"[a-z0-9][a-z0-9\-/.']*[a-z0-9]|[a-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``; a size or model code ("3/4", "nm-b") stays one word."""
    return _WORD.findall(str(text).lower())


@dataclass(frozen=True)
class PseudoQueryConfig:
    """``n_products``: products (without a judged positive) that get one pseudo-query each."""

    n_products: int
    prior_strength: float = 5.0
    max_words: int = 8
    language: str = "english"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_products < 0:
            raise ValueError("n_products must be >= 0")
        if self.prior_strength <= 0:
            raise ValueError("prior_strength must be positive")
        if self.max_words < 1:
            raise ValueError("max_words must be >= 1")


class QueryTermModel:
    """Per stemmed word, the share of judged (query, product) pairs carrying it in the product text
    whose query carries it too, shrunk towards the overall share (module docstring)."""

    def __init__(
        self, in_text: Mapping[str, int], in_query: Mapping[str, int], query_lengths: np.ndarray,
        prior_strength: float, stemmer: Any,
    ) -> None:
        total = sum(in_text.values())
        self.prior = sum(in_query.values()) / total if total else 0.5
        self.prior_strength = prior_strength
        self.in_text = dict(in_text)
        self.in_query = dict(in_query)
        self.query_lengths = query_lengths
        self._stemmer = stemmer

    @classmethod
    def fit(
        cls, queries: Iterable[str], texts: Iterable[str], *, prior_strength: float = 5.0,
        language: str = "english",
    ) -> QueryTermModel:
        """Counts over aligned ``queries`` and product ``texts`` (one judged positive pair each)."""
        stemmer = Stemmer.Stemmer(language)
        in_text: Counter[str] = Counter()
        in_query: Counter[str] = Counter()
        lengths: dict[str, int] = {}
        for query, text in zip(queries, texts, strict=True):
            query_words = words(query)
            lengths[query] = len(query_words)
            text_stems = set(stemmer.stemWords(words(text)))
            in_text.update(text_stems)
            in_query.update(text_stems.intersection(stemmer.stemWords(query_words)))
        return cls(in_text, in_query, np.array(sorted(lengths.values()), dtype=int), prior_strength, stemmer)

    def rates(self, title_words: Sequence[str]) -> np.ndarray:
        """``r(w)`` of each word."""
        k, g = self.prior_strength, self.prior
        stems = self._stemmer.stemWords([w.lower() for w in title_words])
        return np.array([(self.in_query.get(s, 0) + k * g) / (self.in_text.get(s, 0) + k) for s in stems])

    def sample(self, text: str, rng: np.random.Generator, max_words: int) -> str:
        """One pseudo-query for a product text ("" when the text has no word); a model fitted on no
        pairs has no query lengths to draw from and takes three words."""
        title_words = list(dict.fromkeys(words(text)))
        if not title_words:
            return ""
        drawn = int(rng.choice(self.query_lengths)) if len(self.query_lengths) else 3
        n = max(1, min(drawn, max_words, len(title_words)))
        p = self.rates(title_words)
        picked = np.sort(rng.choice(len(title_words), size=n, replace=False, p=p / p.sum()))
        return " ".join(title_words[i] for i in picked)


def pseudo_query_pairs(
    pairs: pd.DataFrame, product_text: Mapping[str, str], catalog_ids: Iterable[str], config: PseudoQueryConfig
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Pseudo-query pairs (columns ``PAIR_COLUMNS``, ``source="pseudo"``) for up to ``n_products``
    catalogue products, drawn at random among those that no row of ``pairs`` has as its positive;
    the term model is fitted on ``pairs`` itself. Returns the rows and their statistics."""
    texts = pairs["product_id"].map(product_text)
    known = texts.notna().to_numpy()
    model = QueryTermModel.fit(
        pairs["query"].astype(str)[known], texts[known],
        prior_strength=config.prior_strength, language=config.language,
    )
    seen = set(pairs["product_id"])
    eligible = [p for p in catalog_ids if p not in seen and p in product_text]
    rng = np.random.default_rng(config.seed)
    chosen = rng.permutation(len(eligible))[: config.n_products]
    rows, empty = [], 0
    for i in np.sort(chosen):
        product_id = eligible[i]
        query = model.sample(product_text[product_id], rng, config.max_words)
        if not query:
            empty += 1
            continue
        rows.append((synthetic_query_id(normalize_query(query)), query, product_id))
    out = pd.DataFrame(rows, columns=["query_id", "query", "product_id"]).assign(
        source="pseudo", grade=np.nan, weight=1.0
    )
    stats = {
        "products_without_pairs": len(eligible),
        "pairs": len(out),
        "products_without_words": empty,
        "mean_words": float(out["query"].str.split().str.len().mean()) if len(out) else 0.0,
        "prior_rate": model.prior,
    }
    return finish_pairs(out, stats), stats
