"""Per-query ranking metrics and the pooled AUC, numpy at the core.

Definitions (the Home Depot benchmark protocol; the same everywhere in shopsearch):

* A run is read in its given rank order; ties in score are never re-sorted. A product id that repeats
  within one query's list counts only at its first position; empty ids (``NO_ID`` padding) are skipped.
  Products without a judgment for the query count as grade 0.
* ``ndcg@k``: DCG@k = sum_{i<=k} gain(grade_i) / log2(i + 1) with ``scheme.gain`` (linear: gain = grade;
  exponential: 2**grade - 1). The ideal DCG@k ranks *all of the query's judged grades* (standard IDCG,
  not limited to what was retrieved). A query whose judged grades are all 0 (IDCG = 0) scores 0 and is
  kept in the mean (this is what the reference figures do).
* Binary metrics (``recall``, ``mrr``, ``map``, ``precision``): relevant = grade >= ``scheme.relevant_min``.
  A query with no relevant judged product gets NaN for them: it is left out of their means and the count
  is reported.
* ``recall@k`` = relevant in top k / R (R = the query's relevant judged products).
* ``mrr@k`` = 1 / rank of the first relevant product within the top k, else 0.
* ``map@k`` (AP@k) = sum_{i<=k, rel_i} P@i / R -- divided by R, not by min(k, R). This is the trec_eval
  ``map_cut_k`` and ranx ``map@k`` definition, so the cross-checks hold exactly.
* ``precision@k`` = relevant in top k / k (trec_eval ``P_k``; a list shorter than k is not rescaled).
* A metric without ``@k`` (``ndcg``, ``map``, ...) uses the whole list.
* ``auc`` is not per query: :func:`pooled_auc` pools every judged (query, candidate) pair (Paper A).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from shopsearch.data.schema import GradeScheme

METRIC_KEYS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map@10", "auc")
METRIC_KEYS_PER_QUERY: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map@10")
POOLED_METRICS = frozenset({"auc"})
GRADED_METRICS = frozenset({"ndcg"})
BINARY_METRICS = frozenset({"recall", "mrr", "map", "precision"})
_ALIASES = {"p": "precision", "rr": "mrr", "ap": "map", "r": "recall"}
_NAME = re.compile(r"^\s*([a-z_]+)\s*(?:@\s*(\d+))?\s*$")


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: ``base`` (ndcg, recall, mrr, map, precision, auc) and cutoff ``k`` (None = all)."""

    key: str
    base: str
    k: int | None

    @property
    def binary(self) -> bool:
        return self.base in BINARY_METRICS


def parse_metric(name: str) -> MetricSpec:
    """Parse ``"ndcg@10"``, ``"recall@100"``, ``"p@5"``, ``"map"``, ``"auc"``; raises ``ValueError``."""
    m = _NAME.match(str(name).lower())
    if not m:
        raise ValueError(f"cannot parse metric {name!r}; expected e.g. 'ndcg@10', 'recall@100', 'auc'")
    base = _ALIASES.get(m.group(1), m.group(1))
    k = int(m.group(2)) if m.group(2) is not None else None
    if base not in GRADED_METRICS | BINARY_METRICS | POOLED_METRICS:
        raise ValueError(f"unknown metric {name!r}; known: ndcg, recall, mrr, map, precision (with @k), auc")
    if base == "auc" and k is not None:
        raise ValueError("auc takes no cutoff: it pools every judged (query, candidate) pair")
    if k is not None and k <= 0:
        raise ValueError(f"metric {name!r}: the cutoff must be a positive integer")
    return MetricSpec(str(name).strip().lower(), base, k)


def split_metrics(metrics: Sequence[str]) -> tuple[list[MetricSpec], list[MetricSpec]]:
    """(per-query metric specs, pooled metric specs), in the order given, duplicates dropped."""
    seen: set[str] = set()
    per_query: list[MetricSpec] = []
    pooled: list[MetricSpec] = []
    for name in metrics:
        spec = parse_metric(name)
        if spec.key in seen:
            continue
        seen.add(spec.key)
        (pooled if spec.base in POOLED_METRICS else per_query).append(spec)
    return per_query, pooled


def _ranked_ids(items: Sequence) -> list[str]:
    """Ids from a list of ids or of (id, score) pairs, in order, first occurrence only, no padding."""
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        pid = str(item[0]) if isinstance(item, tuple | list) else str(item)
        if pid == "" or pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
    return out


def per_query_metrics(
    run: Mapping[str, Sequence[str]] | Mapping[str, Sequence[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    scheme: GradeScheme,
    metrics: Sequence[str] = METRIC_KEYS_PER_QUERY,
    query_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per query (index ``query_id``), one column per metric (pooled metrics such as auc skipped).

    ``run`` maps query_id -> product ids in rank order (``(id, score)`` pairs are accepted too).
    Queries are those of ``query_ids`` if given, else every query of ``qrels``; a query absent from the
    run scores as an empty list. Binary metrics are NaN on queries with no relevant judged product.
    """
    specs, _ = split_metrics(metrics)
    qids = [str(q) for q in (query_ids if query_ids is not None else qrels.keys())]
    n = len(qids)
    frame = pd.DataFrame(index=pd.Index(qids, name="query_id"))
    if not specs:
        return frame
    ks = [s.k for s in specs]
    lists = [_ranked_ids(run.get(q, ())) for q in qids]
    longest = max((len(x) for x in lists), default=0)
    finite_ks = [k for k in ks if k is not None]
    depth = longest if len(finite_ks) < len(ks) else min(longest, max(finite_ks))
    depth = max(depth, 1)

    grades = np.zeros((n, depth), dtype=np.int64)
    judged = [qrels.get(q, {}) for q in qids]
    for i, (ids, qrel) in enumerate(zip(lists, judged, strict=True)):
        if qrel:
            row = [qrel.get(pid, 0) for pid in ids[:depth]]
            grades[i, : len(row)] = row
    ideal_len = max(depth, max((len(j) for j in judged), default=0))
    if any(k is None for k in ks):
        ideal_len = max(ideal_len, depth)
    ideal = np.zeros((n, ideal_len), dtype=np.int64)
    n_rel = np.zeros(n, dtype=np.int64)
    for i, qrel in enumerate(judged):
        g = np.fromiter((int(v) for v in qrel.values()), dtype=np.int64, count=len(qrel))
        g = np.sort(g)[::-1]
        ideal[i, : len(g)] = g
        n_rel[i] = int(np.count_nonzero(g >= scheme.relevant_min))

    positions = np.arange(1, depth + 1, dtype=np.float64)
    discount = 1.0 / np.log2(positions + 1.0)
    gains = scheme.gain_of(grades)
    rel = (grades >= scheme.relevant_min).astype(np.float64)
    cum_rel = np.cumsum(rel, axis=1)
    has_rel = n_rel > 0
    r_safe = np.where(has_rel, n_rel, 1).astype(np.float64)

    for spec in specs:
        k = depth if spec.k is None else min(spec.k, depth)
        if spec.base == "ndcg":
            kk = ideal_len if spec.k is None else spec.k
            dcg = (gains[:, :k] * discount[:k]).sum(axis=1)
            ideal_disc = 1.0 / np.log2(np.arange(2, min(kk, ideal_len) + 2, dtype=np.float64))
            idcg = (scheme.gain_of(ideal[:, : min(kk, ideal_len)]) * ideal_disc).sum(axis=1)
            values = np.divide(dcg, idcg, out=np.zeros(n), where=idcg > 0)
        elif spec.base == "recall":
            values = cum_rel[:, k - 1] / r_safe
        elif spec.base == "precision":
            values = cum_rel[:, k - 1] / float(spec.k if spec.k is not None else depth)
        elif spec.base == "mrr":
            top = rel[:, :k] > 0
            first = np.argmax(top, axis=1)
            values = np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)
        elif spec.base == "map":
            prec = cum_rel[:, :k] / positions[:k]
            values = (prec * rel[:, :k]).sum(axis=1) / r_safe
        else:  # pragma: no cover - parse_metric guards this
            raise ValueError(spec.key)
        if spec.binary:
            values = np.where(has_rel, values, np.nan)
        frame[spec.key] = values
    return frame


def pooled_auc(scores: Sequence[np.ndarray], grades: Sequence[np.ndarray], relevant_min: int) -> float:
    """Corpus-level ROC AUC of relevant (grade >= relevant_min) vs the other judged candidates.

    All (query, candidate) pairs are pooled (Paper A); it is the Mann-Whitney statistic with score ties
    counting 1/2, i.e. ``sklearn.metrics.roc_auc_score`` on the pooled arrays. NaN scores rank lowest.
    Returns NaN when the pool has no relevant or no non-relevant candidate.
    """
    s, pos = _pool(scores, grades, relevant_min)
    n_pos = int(pos.sum())
    n_neg = int(pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s, method="average")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _pool(scores: Sequence[np.ndarray], grades: Sequence[np.ndarray], relevant_min: int):
    if len(scores) != len(grades):
        raise ValueError(f"{len(scores)} score arrays for {len(grades)} grade arrays")
    for i, (s, g) in enumerate(zip(scores, grades, strict=True)):
        if np.shape(s) != np.shape(g):
            raise ValueError(f"query {i}: {np.shape(s)} scores for {np.shape(g)} grades")
    s = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in scores]) if scores else np.zeros(0)
    g = np.concatenate([np.asarray(x).ravel() for x in grades]) if grades else np.zeros(0)
    s = np.where(np.isnan(s), -np.inf, s)
    return s, g >= relevant_min


class AucPool:
    """Pooled candidates prepared once, so query-resampled AUCs cost O(n) each (for bootstrap CIs).

    ``auc(weights)`` takes per-query multiplicities, shape (B, n_queries), and returns B pooled AUCs in
    which every candidate of query q counts ``weights[:, q]`` times (ties still count 1/2).
    """

    def __init__(self, scores: Sequence[np.ndarray], grades: Sequence[np.ndarray], relevant_min: int):
        s, pos = _pool(scores, grades, relevant_min)
        owner = np.repeat(np.arange(len(scores)), [np.size(x) for x in scores])
        order = np.argsort(s, kind="stable")
        s_sorted = s[order]
        self.n_queries = len(scores)
        self.size = s.size
        self.owner = owner[order]
        is_pos = pos[order]
        self.neg = (~is_pos).astype(np.float64)
        self.pos_idx = np.flatnonzero(is_pos)
        # for each positive: [start, end) of its group of tied scores in sorted order
        new_group = np.r_[True, s_sorted[1:] != s_sorted[:-1]] if s.size else np.zeros(0, bool)
        starts = np.flatnonzero(new_group)
        ends = np.r_[starts[1:], s.size]
        gid = np.cumsum(new_group) - 1
        self.tie_start = starts[gid][self.pos_idx]
        self.tie_end = ends[gid][self.pos_idx]

    def auc(self, weights: np.ndarray) -> np.ndarray:
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if self.size == 0:
            return np.full(weights.shape[0], np.nan)
        step = max(1, 2_000_000 // self.size)
        if weights.shape[0] > step:
            return np.concatenate([self.auc(weights[i : i + step]) for i in range(0, weights.shape[0], step)])
        w = weights[:, self.owner]
        wn = w * self.neg
        cum = np.zeros((w.shape[0], self.size + 1))
        np.cumsum(wn, axis=1, out=cum[:, 1:])
        below = cum[:, self.tie_start]  # weighted negatives scoring strictly lower
        tied = cum[:, self.tie_end] - below  # weighted negatives with the same score
        wp = w[:, self.pos_idx]
        num = (wp * (below + 0.5 * tied)).sum(axis=1)
        den = wp.sum(axis=1) * wn.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def adjacent_grade_accuracy(scores: np.ndarray, grades: np.ndarray) -> tuple[int, int]:
    """Ordering accuracy between adjacent grades for one query: over every pair (a, b) of judged
    products where b's grade is the next lower grade present below a's, count the pairs scored in
    the right order (``score[a] > score[b]``; a tie counts half). Returns (correct x 2, pairs x 2)
    so that halves stay integers; sum over queries and divide for the pooled accuracy.

    This is the quantity ROAR optimises (consecutive present grades, METHOD.md part A).
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(grades)
    levels = np.unique(g)
    correct = total = 0
    for hi, lo in zip(levels[1:], levels[:-1], strict=True):
        diff = s[g == hi][:, None] - s[g == lo][None, :]
        correct += int(2 * (diff > 0).sum() + (diff == 0).sum())
        total += 2 * diff.size
    return correct, total
