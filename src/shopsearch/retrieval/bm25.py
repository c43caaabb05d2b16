"""BM25 over rendered product text with bm25s, tokenised as bm25s' README does.

Corpus and queries go through ``bm25s.tokenize`` with the same stop words and PyStemmer stemmer;
query stems are then looked up in the *corpus* vocabulary by string, so a word the catalogue never
uses is ignored (never mapped onto some other token's id). This is the set-up behind the Home
Depot reference run (NDCG@10 0.3639 over titles). bm25s scores; shopsearch selects the top k
itself (:func:`top_k`), with equal scores in catalogue order where bm25s leaves their order to
``argpartition``: on Home Depot `dev` that tie rule alone gives NDCG@10 0.3670.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pandas as pd
import Stemmer

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, SearchResult
from shopsearch.retrieval.fusion import candidate_positions, check_product_ids

PARAMS_FILE = "shopsearch_bm25.json"
# bm25s methods whose scores give every document a non-zero baseline (non-occurrence array);
# for the others a score <= 0 means "no query term in the document".
_BASELINE_METHODS = {"bm25l", "bm25+"}
_METHODS = {"robertson", "lucene", "atire", "bm25l", "bm25+"}
# Below this many queries a thread pool costs more than it saves.
_THREAD_MIN_QUERIES = 64


def _available_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects cpusets, unlike os.cpu_count
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def top_k(scores: np.ndarray, k: int, *, positive_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best ``scores``, best first, ties by row number.

    Written here rather than bm25s' own selection because that one runs ``argpartition`` over the
    whole catalogue, which degrades on BM25's mostly-zero score vectors (~7 ms per query at 55k
    products, most of a search); here only the candidates are partitioned, and equal scores
    keep a fixed order. ``positive_only``: a score <= 0 is no hit.
    """
    rows = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    values = scores[rows]
    if len(rows) > k:
        kth = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= kth  # every row tied with the k-th, so the tie rule decides
        rows, values = rows[keep], values[keep]
    order = np.lexsort((rows, -values))[:k]
    return rows[order], values[order].astype(np.float32)


def _make_stemmer(language: str | None) -> Any:
    if language is None:
        return None
    if language not in Stemmer.algorithms():
        raise ShopsearchError(
            f"unknown stemmer {language!r}; choose from {sorted(Stemmer.algorithms())} or None"
        )
    return Stemmer.Stemmer(language)


class BM25Retriever:
    """Lexical retriever; products are rows of ``product_ids`` aligned with ``texts``.

    Rows of a search result are padded (``NO_ID`` / ``-inf``) where fewer than k products contain a
    query term, including whole rows for queries with no known term; ``k`` above the catalogue
    size is fine. Equal scores rank in catalogue order (:func:`top_k`). ``n_threads=None`` uses a
    thread pool over the available CPUs for large batches.
    """

    name = "bm25"

    def __init__(
        self,
        product_ids: Sequence[str] | np.ndarray,
        texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | Sequence[str] | None = "en",
        n_threads: int | None = None,
        show_progress: bool = False,
    ) -> None:
        ids = np.asarray(product_ids, dtype=object)
        if ids.ndim != 1 or len(ids) != len(texts):
            raise ShopsearchError(f"{len(ids)} product ids for {len(texts)} texts")
        if len(ids) == 0:
            raise ShopsearchError("cannot build a BM25 index over an empty catalogue")
        check_product_ids(ids)
        if method not in _METHODS:
            raise ShopsearchError(f"unknown BM25 method {method!r}; choose from {sorted(_METHODS)}")
        self._setup(
            ids, dict(k1=k1, b=b, method=method, stemmer=stemmer, stopwords=_jsonable(stopwords)), n_threads
        )
        corpus_tokens = self._tokenize(list(texts), show_progress=show_progress, return_ids=True)
        self._bm25 = bm25s.BM25(k1=k1, b=b, method=method)
        self._bm25.index(corpus_tokens, show_progress=show_progress)

    def _setup(self, ids: np.ndarray, params: dict[str, Any], n_threads: int | None) -> None:
        self.product_ids = ids
        self.params = params
        self.n_threads = n_threads
        self._stemmer = _make_stemmer(params["stemmer"])
        self._positions = pd.Index(ids, dtype=object)  # not "str": see serve.products.ProductTable

    def __len__(self) -> int:
        return len(self.product_ids)

    def _tokenize(self, texts: list[str], *, show_progress: bool = False, return_ids: bool = False) -> Any:
        return bm25s.tokenize(
            texts,
            stopwords=self.params["stopwords"],
            stemmer=self._stemmer,
            return_ids=return_ids,
            show_progress=show_progress,
        )

    def _query_tokens(self, queries: Sequence[str]) -> tuple[list[list[str]], np.ndarray]:
        """Query stems restricted to the corpus vocabulary, and how many each query kept."""
        vocab = self._bm25.vocab_dict
        tokens = [[t for t in q if t in vocab and t != ""] for q in self._tokenize([str(q) for q in queries])]
        return tokens, np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        """Top-k products per query, best first, BM25 scores as float32."""
        if k < 1:
            raise ShopsearchError(f"k must be >= 1, got {k}")
        n_q, n_docs = len(queries), len(self.product_ids)
        ids = np.full((n_q, k), NO_ID, dtype=object)
        scores = np.full((n_q, k), NO_SCORE, dtype=np.float32)
        if n_q == 0:
            return SearchResult(ids, scores)
        tokens, n_known = self._query_tokens(queries)
        active = np.flatnonzero(n_known > 0)  # queries with no known term stay fully padded
        if len(active) == 0:
            return SearchResult(ids, scores)
        k_eff = min(k, n_docs)
        threads = self.n_threads
        if threads is None:
            threads = _available_threads() if len(active) >= _THREAD_MIN_QUERIES else 0
        vocab = self._bm25.vocab_dict
        positive_only = self.params["method"] not in _BASELINE_METHODS

        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            full = self._bm25.get_scores_from_ids([vocab[t] for t in tokens[i]])
            return top_k(full, k_eff, positive_only=positive_only)

        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                tops = list(pool.map(one, active.tolist()))
        else:
            tops = [one(i) for i in active.tolist()]
        for i, (rows, top) in zip(active, tops, strict=True):
            ids[i, : len(rows)] = self.product_ids[rows]
            scores[i, : len(rows)] = top
        return SearchResult(ids, scores)

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """BM25 score (0 when no term matches) of each query for each of its listed products."""
        if len(queries) != len(candidates):
            raise ShopsearchError(f"{len(queries)} queries but {len(candidates)} candidate lists")
        tokens, n_known = self._query_tokens(queries)
        vocab = self._bm25.vocab_dict
        out = []
        for toks, known, cands in zip(tokens, n_known, candidates, strict=True):
            rows = candidate_positions(self._positions, cands, who="BM25 index")
            if known == 0:
                out.append(np.zeros(len(rows), dtype=np.float32))
                continue
            full = self._bm25.get_scores_from_ids([vocab[t] for t in toks])
            out.append(np.asarray(full[rows], dtype=np.float32))
        return out

    def score_matrix(self, queries: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """(Q, R) float32 BM25 scores (0 where no term matches) of every query for every catalogue
        row in ``rows`` (positions in ``product_ids``): one pass over the index per distinct query."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.product_ids)):
            raise ShopsearchError(f"catalogue rows must lie in 0..{len(self.product_ids) - 1}")
        distinct, inverse = np.unique(np.asarray([str(q) for q in queries], dtype=object), return_inverse=True)
        tokens, n_known = self._query_tokens(distinct.tolist())
        vocab = self._bm25.vocab_dict
        out = np.zeros((len(distinct), len(rows)), dtype=np.float32)
        for i, (toks, known) in enumerate(zip(tokens, n_known, strict=True)):
            if known:
                out[i] = self._bm25.get_scores_from_ids([vocab[t] for t in toks])[rows]
        return out[inverse.reshape(-1)]

    def query_term_coverage(self, queries: Sequence[str]) -> np.ndarray:
        """Share of each query's analysed terms (after stop words and stemming) that the index
        vocabulary holds: BM25 scores a query on those terms only. 1.0 for a query with no terms."""
        vocab = self._bm25.vocab_dict
        terms = [[t for t in q if t != ""] for q in self._tokenize([str(q) for q in queries])]
        total = np.fromiter((len(t) for t in terms), dtype=np.float64, count=len(terms))
        known = np.fromiter((sum(t in vocab for t in q) for q in terms), dtype=np.float64, count=len(terms))
        return np.where(total > 0, known / np.maximum(total, 1.0), 1.0)

    def describe(self) -> dict[str, Any]:
        return {"n_products": len(self), "vocabulary": len(self._bm25.vocab_dict), **self.params}

    def save(self, directory: str | Path) -> Path:
        """Write the bm25s index files plus our parameters and product ids into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(directory, show_progress=False)
        meta = {
            **self.params,
            "product_ids": [str(x) for x in self.product_ids],
            "bm25s_version": bm25s.__version__,
        }
        (directory / PARAMS_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, *, mmap: bool = False, n_threads: int | None = None
    ) -> BM25Retriever:
        """Load what :meth:`save` wrote; ``mmap`` maps the score arrays instead of reading them."""
        directory = Path(directory)
        meta_path = directory / PARAMS_FILE
        if not meta_path.is_file():
            raise ShopsearchError(f"{directory} is not a shopsearch BM25 index (no {PARAMS_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ids = np.asarray(meta.pop("product_ids"), dtype=object)
        meta.pop("bm25s_version", None)
        self = cls.__new__(cls)
        self._setup(ids, meta, n_threads)
        try:
            self._bm25 = bm25s.BM25.load(directory, mmap=mmap, show_progress=False)
        except (OSError, ValueError) as exc:
            raise ShopsearchError(f"could not load the bm25s index in {directory}: {exc}") from exc
        num_docs = self._bm25.scores.get("num_docs")
        if num_docs != len(ids):
            raise ShopsearchError(
                f"{directory}: bm25s index holds {num_docs} documents but {len(ids)} product ids"
            )
        return self


def _jsonable(stopwords: str | Sequence[str] | None) -> str | list[str] | None:
    return stopwords if stopwords is None or isinstance(stopwords, str) else [str(w) for w in stopwords]
