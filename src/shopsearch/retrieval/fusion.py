"""Hybrid retrieval: fuse ranked lists of several retrievers, batched and in plain numpy.

Both fusions work on whole batches at once: every (query row, product) pair of all component
lists is flattened, identical pairs are summed with ``np.bincount``, and a single ``lexsort``
ranks every row. Ties are broken by the best rank a product reached in any list, then by
component order, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, cast, runtime_checkable

import numpy as np
import pandas as pd

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, Retriever, SearchResult

Normalization = Literal["minmax", "zscore"]
Weighting = Literal["fixed", "coverage"]


@runtime_checkable
class CandidateScorer(Protocol):
    """A retriever that also scores given products for each query (needed by ``rescore_union``)."""

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]: ...


@runtime_checkable
class TermCoverage(Protocol):
    """A lexical component that can say how much of each query it matches on
    (:meth:`~shopsearch.retrieval.bm25.BM25Retriever.query_term_coverage`)."""

    def query_term_coverage(self, queries: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class QueryVectorRetriever(Protocol):
    """A dense-style retriever: query vectors first, then a search and candidate scoring from them."""

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray: ...

    def search_vectors(self, qvecs: np.ndarray, k: int) -> SearchResult: ...

    def score_candidates(
        self,
        queries: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        query_vectors: np.ndarray | None = None,
    ) -> list[np.ndarray]: ...


def candidate_positions(index: pd.Index, candidates: Sequence[str], *, who: str) -> np.ndarray:
    """Row numbers of ``candidates`` in ``index``; unknown ids raise, naming a few of them."""
    rows = index.get_indexer(pd.Index([str(c) for c in candidates], dtype=object))
    if (rows < 0).any():
        unknown = [str(c) for c, r in zip(candidates, rows, strict=True) if r < 0]
        raise ShopsearchError(f"{len(unknown)} product id(s) not in the {who}: {unknown[:5]}")
    return rows


def check_product_ids(ids: np.ndarray) -> None:
    """Refuse the empty id: it is ``NO_ID``, the padding of result rows."""
    if (ids == NO_ID).any():
        raise ShopsearchError(
            f"{int((ids == NO_ID).sum())} product id(s) are empty; '' marks padding in results"
        )


def _weights(n_lists: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.ones(n_lists) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_lists,) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ShopsearchError(f"need one finite weight >= 0 per result list ({n_lists}), got {weights!r}")
    return w


def _check(results: Sequence[SearchResult], weights: Sequence[float] | None) -> np.ndarray:
    if not results:
        raise ShopsearchError("fusion needs at least one result list")
    n = len(results[0])
    if any(len(r) != n for r in results):
        raise ShopsearchError(f"result lists cover different numbers of queries: {[len(r) for r in results]}")
    return _weights(len(results), weights)


def _fuse(
    results: Sequence[SearchResult], contributions: Sequence[np.ndarray], base: np.ndarray, k: int
) -> SearchResult:
    """Sum per-(row, id) contributions, add a per-row ``base``, keep the k best of each row."""
    if k < 1:
        raise ShopsearchError(f"k must be >= 1, got {k}")
    n_q, n_c = len(results[0]), len(results)
    rows, ids, vals, tie = [], [], [], []
    for c, (res, contrib) in enumerate(zip(results, contributions, strict=True)):
        keep = res.ids != NO_ID
        r, col = np.nonzero(keep)
        rows.append(r)
        ids.append(res.ids[keep])
        vals.append(contrib[keep])
        tie.append(col * n_c + c)  # best rank first, then earlier component
    row = np.concatenate(rows)
    out_ids = np.full((n_q, k), NO_ID, dtype=object)
    out_scores = np.full((n_q, k), NO_SCORE, dtype=np.float32)
    if len(row) == 0:
        return SearchResult(out_ids, out_scores)
    codes, uniques = pd.factorize(np.concatenate(ids))
    pair, inverse = np.unique(row * len(uniques) + codes, return_inverse=True)
    score = np.bincount(inverse, weights=np.concatenate(vals), minlength=len(pair))
    first = np.full(len(pair), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, np.concatenate(tie))
    p_row, p_code = pair // len(uniques), pair % len(uniques)
    score = score + base[p_row]
    order = np.lexsort((first, -score, p_row))
    p_row, p_code, score = p_row[order], p_code[order], score[order]
    # Position of each pair within its row, to keep the first k.
    starts = np.searchsorted(p_row, np.arange(n_q))
    rank = np.arange(len(p_row)) - starts[p_row]
    keep = rank < k
    out_ids[p_row[keep], rank[keep]] = np.asarray(uniques, dtype=object)[p_code[keep]]
    out_scores[p_row[keep], rank[keep]] = score[keep]
    return SearchResult(out_ids, out_scores)


def reciprocal_rank_fusion(
    results: Sequence[SearchResult], k: int, rrf_k: int = 60, weights: Sequence[float] | None = None
) -> SearchResult:
    """RRF: ``score(d) = sum_i w_i / (rrf_k + rank_i(d))`` with 1-based ranks; padding is skipped."""
    w = _check(results, weights)
    contributions = []
    for wi, res in zip(w, results, strict=True):
        ranks = np.arange(1, res.ids.shape[1] + 1, dtype=np.float64)
        contributions.append(np.broadcast_to(wi / (rrf_k + ranks), res.ids.shape))
    return _fuse(results, contributions, np.zeros(len(results[0])), k)


def normalize_scores(
    scores: np.ndarray, valid: np.ndarray, method: Normalization
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row normalised scores over the ``valid`` entries, and each row's floor.

    The floor (0 for min-max, the row's lowest z-score for z-score) is what a product missing from
    that list is credited with, so being absent never beats being ranked last.
    Min-max maps a row whose valid scores are all equal to 1.
    """
    s = np.where(valid, scores.astype(np.float64), 0.0)
    count = valid.sum(axis=1, keepdims=True)
    safe_count = np.maximum(count, 1)  # all-padding rows end up all zero below
    if method == "minmax":
        lo = np.where(valid, s, np.inf).min(axis=1, keepdims=True)
        hi = np.where(valid, s, -np.inf).max(axis=1, keepdims=True)
        span = np.where(count > 0, hi - lo, 0.0)
        norm = np.where(span > 0, (s - np.where(count > 0, lo, 0.0)) / np.where(span > 0, span, 1.0), 1.0)
        floor = np.zeros(len(s))
    elif method == "zscore":
        mean = s.sum(axis=1, keepdims=True) / safe_count
        std = np.sqrt((np.where(valid, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / safe_count)
        norm = np.where(std > 0, (s - mean) / np.where(std > 0, std, 1.0), 0.0)
        floor = np.where(valid, norm, np.inf).min(axis=1)
    else:
        raise ShopsearchError(f"unknown normalization {method!r}; use minmax or zscore")
    norm = np.where(valid, norm, 0.0)
    floor = np.where(count[:, 0] > 0, floor, 0.0)
    return norm, floor


def weighted_score_fusion(
    results: Sequence[SearchResult],
    k: int,
    weights: Sequence[float] | None = None,
    normalization: Normalization = "minmax",
) -> SearchResult:
    """``score(d) = sum_i w_i * norm_i(d)``, scores normalised per query row and list (see
    :func:`normalize_scores`); a product missing from list i gets that list's floor."""
    w = _check(results, weights)
    contributions, base = [], np.zeros(len(results[0]))
    for wi, res in zip(w, results, strict=True):
        norm, floor = normalize_scores(res.scores, res.ids != NO_ID, normalization)
        contributions.append(wi * (norm - floor[:, None]))
        base += wi * floor
    return _fuse(results, contributions, base, k)


def _average_ranks_desc(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` in descending order, ties sharing their average rank."""
    from scipy.stats import rankdata

    return rankdata(-np.asarray(x, dtype=np.float64), method="average") if len(x) else np.zeros(0)


class HybridRetriever:
    """Fuses component retrievers (typically BM25 + dense), each searched to ``depth``.

    ``weighted`` (the default) sums per-query normalised scores (``normalization``) with ``weights``
    (default: equal); ``rrf`` needs no score scale at all and sums reciprocal ranks.

    ``rescore_union`` (the default): fuse over the union of the component lists with every product
    scored exactly by every component (:meth:`score_candidates`, normalised or ranked over the
    union), instead of crediting a product missing from one list with that list's floor. Every
    component then needs ``score_candidates``; a dense component (one with ``encode_queries`` and
    ``search_vectors``) encodes each query once for both passes. On Home Depot ``dev`` with the
    trained model, equal-weight min-max fusion over the rescored union gave NDCG@10 0.4041 against
    0.3959 without rescoring and 0.3863 for plain RRF (docs/training.md).

    ``weighting="coverage"`` (needs ``rescore_union``) makes the weights per query: a lexical
    component's weight (one with ``query_term_coverage``, e.g. BM25) is multiplied by the share of
    the query's terms its vocabulary holds, and what it gives up goes to the other components in
    proportion to theirs. Min-max normalisation makes a partial match on two words of a misspelt
    three-word query look as sure as a full match; the weight says how much of the query BM25 saw.
    It is for a dense model trained on the shop's own (noisy) queries: on Home Depot ``dev``, where it
    was chosen, it raised the trained hybrid's NDCG@10 by 0.2..0.3 points for four trained models; on
    held-out query halves by 0.01 and 0.12 (not significant); with the off-the-shelf model it lowered
    it by 0.2 (docs/training.md). Hence an option, not the default.
    """

    name = "hybrid"

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        method: Literal["rrf", "weighted"] = "weighted",
        rrf_k: int = 60,
        weights: Sequence[float] | None = None,
        depth: int = 100,
        normalization: Normalization = "minmax",
        rescore_union: bool = True,
        weighting: Weighting = "fixed",
    ) -> None:
        if not retrievers:
            raise ShopsearchError("a hybrid retriever needs at least one component")
        if method not in ("rrf", "weighted"):
            raise ShopsearchError(f"unknown fusion method {method!r}; use rrf or weighted")
        if normalization not in ("minmax", "zscore"):
            raise ShopsearchError(f"unknown normalization {normalization!r}; use minmax or zscore")
        if depth < 1 or rrf_k < 0:
            raise ShopsearchError(f"need depth >= 1 and rrf_k >= 0, got depth={depth}, rrf_k={rrf_k}")
        self.retrievers = list(retrievers)
        self.method = method
        self.rrf_k = rrf_k
        self.weights = (
            None if weights is None else [float(x) for x in _weights(len(self.retrievers), weights)]
        )
        self.depth = depth
        self.normalization = normalization
        self.rescore_union = rescore_union
        if weighting not in ("fixed", "coverage"):
            raise ShopsearchError(f"unknown weighting {weighting!r}; use fixed or coverage")
        if weighting == "coverage" and not rescore_union:
            raise ShopsearchError("weighting='coverage' fuses per query over the rescored union: needs rescore_union")
        self.weighting = weighting
        if rescore_union:
            missing = [r.name for r in self.retrievers if not isinstance(r, CandidateScorer)]
            if missing:
                raise ShopsearchError(
                    f"rescore_union needs components that score candidate lists; not {missing} "
                    "(pass rescore_union=False to fuse their lists as they are)"
                )

    def describe(self) -> dict[str, object]:
        return {
            "components": [r.name for r in self.retrievers],
            "method": self.method,
            "rrf_k": self.rrf_k,
            "weights": self.weights,
            "depth": self.depth,
            "normalization": self.normalization,
            "rescore_union": self.rescore_union,
            "weighting": self.weighting,
        }

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        depth = max(self.depth, k)
        if self.rescore_union:
            return self._rescored_union(queries, depth, k)
        results = [r.search(queries, depth) for r in self.retrievers]
        if self.method == "rrf":
            return reciprocal_rank_fusion(results, k, self.rrf_k, self.weights)
        return weighted_score_fusion(results, k, self.weights, self.normalization)

    def _rescored_union(self, queries: Sequence[str], depth: int, k: int) -> SearchResult:
        # A dense component's query vectors serve both its search and its scoring of the union:
        # encoding is most of a dense search's cost, and a server may run without a query cache.
        vectors = [
            r.encode_queries(queries) if isinstance(r, QueryVectorRetriever) else None
            for r in self.retrievers
        ]
        results = [
            r.search_vectors(v, depth)
            if isinstance(r, QueryVectorRetriever) and v is not None
            else r.search(queries, depth)
            for r, v in zip(self.retrievers, vectors, strict=True)
        ]
        union = [
            list(dict.fromkeys(pid for res in results for pid in res.ids[i] if pid != NO_ID))
            for i in range(len(queries))
        ]
        parts = [
            r.score_candidates(queries, union, query_vectors=v)
            if isinstance(r, QueryVectorRetriever)
            else cast(CandidateScorer, r).score_candidates(queries, union)
            for r, v in zip(self.retrievers, vectors, strict=True)
        ]
        scores = self._combine(parts, union, queries)
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        out = np.full((len(queries), k), NO_SCORE, dtype=np.float32)
        for i, (cands, s) in enumerate(zip(union, scores, strict=True)):
            order = np.argsort(-s, kind="stable")[:k]  # ties keep the union's order: first list first
            ids[i, : len(order)] = np.asarray(cands, dtype=object)[order]
            out[i, : len(order)] = s[order]
        return SearchResult(ids, out)

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """Fused score of each listed product: RRF over the ranks *within the candidate list*
        (ties share their average rank), or the weighted sum of scores normalised over the list."""
        parts = []
        for r in self.retrievers:
            if not isinstance(r, CandidateScorer):
                raise ShopsearchError(f"component {r.name!r} cannot score candidate lists")
            parts.append(r.score_candidates(queries, candidates))
        return self._combine(parts, candidates, queries)

    def query_weights(self, queries: Sequence[str]) -> np.ndarray:
        """Each query's component weights, shape (queries, components): the fixed ones, or under
        ``weighting="coverage"`` the lexical ones scaled by query term coverage (class docstring)."""
        fixed = _weights(len(self.retrievers), self.weights)
        w = np.tile(fixed, (len(queries), 1))
        if self.weighting == "fixed":
            return w
        lexical = np.array([isinstance(r, TermCoverage) for r in self.retrievers])
        for c, r in enumerate(self.retrievers):
            if lexical[c]:
                w[:, c] *= cast(TermCoverage, r).query_term_coverage(queries)
        others = fixed[~lexical].sum()
        if others > 0:  # the weight the lexical components gave up, shared by the others
            given_up = fixed[lexical].sum() - w[:, lexical].sum(axis=1)
            w[:, ~lexical] += given_up[:, None] * (fixed[~lexical] / others)
        return w

    def _combine(
        self, parts: Sequence[Sequence[np.ndarray]], candidates: Sequence[Sequence[str]], queries: Sequence[str]
    ) -> list[np.ndarray]:
        weights = self.query_weights(queries)
        out = []
        for i, cands in enumerate(candidates):
            total = np.zeros(len(cands))
            for wi, comp in zip(weights[i], parts, strict=True):
                s = np.asarray(comp[i], dtype=np.float64)
                if self.method == "rrf":
                    total += wi / (self.rrf_k + _average_ranks_desc(s))
                elif len(s):
                    norm, _ = normalize_scores(s[None, :], np.ones((1, len(s)), bool), self.normalization)
                    total += wi * norm[0]
            out.append(total.astype(np.float32))
        return out
