"""Hard-negative mining for stage 1: top-k from a dense index, minus likely false negatives.

Rule (paper A's reconstruction of NV-Retriever's "TopK-PercPos"), per pair (query, positive):
candidates are the query's dense top-k; dropped, each under the FIRST rule that applies:

1. ``positive_itself``      the pair's own positive;
2. ``other_positive``       another positive of the same query in the pair table (a judged
                            substitute taken as positive, a clicked product, ...);
3. ``judged_top_grade``     a product judged for this query with one of the scheme's top
                            ``exclude_top_grades`` grades (ESCI: Exact, Substitute; Home Depot 0..6:
                            6 and 5) — labelled good, so pushing it away would teach the wrong thing;
4. ``above_relative_score`` a candidate scoring above ``max_relative_score`` x the positive's score:
                            too close to the positive to trust as a negative (near-duplicates,
                            unlabelled good products). ``None`` turns the rule off: on pooled
                            judgments, where every unjudged product counts as irrelevant, those are
                            the products that outrank the judged ones.

The first ``n_negatives`` survivors (or a seeded random choice of them) become ``negative_1..n``,
hardest first. A pair short of n after ``top_k`` is re-mined at ``refill_top_k`` depth; still
short, the slots stay None and are counted; :func:`fill_missing_negatives` then fills them with
random products, so no pair is lost. Encoding is batched (``batch_size`` queries a call):
the catalogue side is the retriever's prebuilt index, so mining 8k queries against 55k products is
one index build plus query encoding. Rule 4 compares the index's search scores with the
positive's exact score: use a flat index for mining (an IVF-PQ score is approximate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from shopsearch.data.schema import GradeScheme, Judgments
from shopsearch.retrieval.base import NO_ID, SearchResult

_SEP = "\x1f"  # joins query_id and product_id into one hashable key; in neither id
REASONS: tuple[str, ...] = ("positive_itself", "other_positive", "judged_top_grade", "above_relative_score")


class ScoringRetriever(Protocol):
    """What mining needs: :class:`~shopsearch.retrieval.dense.DenseRetriever` or a stand-in."""

    def search(self, queries: Sequence[str], k: int) -> SearchResult: ...

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class MiningConfig:
    """See the module docstring. ``refill_top_k`` None -> 4 x ``top_k``; <= ``top_k``: no refill."""

    top_k: int = 50
    n_negatives: int = 4
    max_relative_score: float | None = 0.95
    exclude_top_grades: int = 2
    sample: Literal["top", "random"] = "top"
    seed: int = 0
    batch_size: int = 256
    refill_top_k: int | None = None

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.n_negatives < 1 or self.batch_size < 1:
            raise ValueError("top_k, n_negatives and batch_size must be >= 1")
        if self.max_relative_score is not None and self.max_relative_score <= 0:
            raise ValueError(f"max_relative_score must be > 0 or None, got {self.max_relative_score}")
        if self.sample not in ("top", "random"):
            raise ValueError(f"sample must be 'top' or 'random', got {self.sample!r}")


def excluded_min_grade(scheme: GradeScheme, exclude_top_grades: int) -> int:
    """The lowest grade that marks a candidate as labelled-good (never a negative)."""
    return scheme.max_grade - int(exclude_top_grades) + 1


def negative_columns(n: int) -> list[str]:
    return [f"negative_{i}" for i in range(1, n + 1)]


def fill_missing_negatives(
    pairs: pd.DataFrame,
    n_negatives: int,
    product_ids: Sequence[str] | np.ndarray,
    judgments: Judgments | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, int]:
    """Fill empty ``negative_*`` slots with seeded random catalogue products, so no pair is lost.

    A pair whose query has no trustworthy hard negative (its dense top-k is all positives or
    near-positives) still teaches through its positive and the in-batch products; dropping it,
    as a fixed-width row would otherwise force, lost a third of Home Depot's pairs. A random
    product is an easy negative, never one judged for that query (any grade) nor one of its
    positives; it is drawn again on a clash. Returns the filled table and the number of slots filled.
    """
    cols = negative_columns(n_negatives)
    out = pairs.reset_index(drop=True).copy()
    missing = out[cols].isna().to_numpy()
    if not missing.any():
        return out, 0
    ids = np.asarray([str(p) for p in product_ids], dtype=object)
    taken: dict[str, set[str]] = {}
    for qid, pid in zip(out["query_id"].astype(str), out["product_id"].astype(str), strict=True):
        taken.setdefault(qid, set()).add(pid)
    if judgments is not None:
        j = judgments.df
        for qid, pid in zip(j["query_id"].astype(str), j["product_id"].astype(str), strict=True):
            if qid in taken:
                taken[qid].add(pid)
    rng = np.random.default_rng(seed)
    rows, slots = np.nonzero(missing)
    qids = out["query_id"].astype(str).to_numpy()
    for row, slot in zip(rows, slots, strict=True):
        # the row's own kept negatives are avoided too, so a row never holds one product twice
        avoid = taken[qids[row]] | {str(v) for v in out.loc[row, cols] if v is not None and v == v}
        pick = ids[rng.integers(len(ids))]
        while pick in avoid:
            pick = ids[rng.integers(len(ids))]
        out.at[row, cols[slot]] = pick
    return out, int(missing.sum())


def mine_hard_negatives(
    pairs: pd.DataFrame,
    retriever: ScoringRetriever,
    judgments: Judgments | None = None,
    config: MiningConfig = MiningConfig(),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``pairs`` (``query_id, query, product_id``, ...) plus ``negative_1..n`` (product ids or
    None), and stats for the training manifest (drops by rule, shortfalls, mean kept)."""
    pairs = pairs.reset_index(drop=True)
    work = pairs[["query_id", "query", "product_id"]].astype(str).assign(_pair=np.arange(len(pairs)))
    indexed_ids = getattr(retriever, "product_ids", None)
    indexed = (
        work["product_id"].isin(set(map(str, indexed_ids)))
        if indexed_ids is not None
        else pd.Series(True, index=work.index)
    )
    queries = work.drop_duplicates("query_id")[["query_id", "query"]].reset_index(drop=True)
    work["_pos_score"] = _positive_scores(retriever, work[indexed], queries, config.batch_size).reindex(
        work.index
    )

    bad = _excluded(work, judgments, config)
    live = work[work["_pos_score"].notna()]
    long = _filter(live, _candidates(retriever, queries, config.top_k, config.batch_size), bad, config)
    refill_k = 4 * config.top_k if config.refill_top_k is None else int(config.refill_top_k)
    kept_n = long[long["reason"].isna()].groupby("_pair").size().reindex(live["_pair"], fill_value=0)
    short = kept_n.index[kept_n.to_numpy() < config.n_negatives]
    refilled = 0
    if len(short) and refill_k > config.top_k:
        again = live[live["_pair"].isin(short)]
        deep_q = queries[queries["query_id"].isin(set(again["query_id"]))].reset_index(drop=True)
        deep = _filter(again, _candidates(retriever, deep_q, refill_k, config.batch_size), bad, config)
        long = pd.concat([long[~long["_pair"].isin(short)], deep], ignore_index=True)
        refilled = len(again)

    kept = long[long["reason"].isna()].copy()
    if config.sample == "random":
        kept["_key"] = np.random.default_rng(config.seed).random(len(kept))
        kept = kept.sort_values(["_pair", "_key"], kind="stable")
    kept = kept[kept.groupby("_pair").cumcount() < config.n_negatives].sort_values(["_pair", "rank"])
    kept["_slot"] = kept.groupby("_pair").cumcount() + 1
    table = kept.pivot(index="_pair", columns="_slot", values="cand").reindex(
        index=range(len(pairs)), columns=range(1, config.n_negatives + 1)
    )
    out = pairs.copy()
    for slot, col in enumerate(negative_columns(config.n_negatives), start=1):
        values = table[slot].astype(object).where(table[slot].notna(), None)
        out[col] = pd.Series(values.to_numpy(), index=out.index, dtype=object)  # None, not NaN, when short

    counts = kept.groupby("_pair").size().reindex(range(len(pairs)), fill_value=0).to_numpy()
    ratio = (kept["score"] / kept["_pos_score"]).replace([np.inf, -np.inf], np.nan)
    stats = {
        "config": asdict(config),
        "pairs": len(pairs),
        "queries": len(queries),
        "excluded_min_grade": None
        if judgments is None
        else excluded_min_grade(judgments.scheme, config.exclude_top_grades),
        "positive_not_indexed": int((~indexed).sum()),
        "candidates_considered": len(long),
        "dropped": {r: int((long["reason"] == r).sum()) for r in REASONS},
        "refilled_pairs": int(refilled),
        "rows_short": int((counts < config.n_negatives).sum()),
        "rows_without_negatives": int((counts == 0).sum()),
        "negatives_missing": int((config.n_negatives - counts).sum()),
        "mean_negatives_kept": float(counts.mean()) if len(counts) else 0.0,
        "mean_negative_to_positive_score": float(ratio.mean()) if ratio.notna().any() else None,
    }
    return out, stats


def _positive_scores(
    retriever: ScoringRetriever, work: pd.DataFrame, queries: pd.DataFrame, batch_size: int
) -> pd.Series:
    """Score of each pair's positive for its query, one scoring call per batch of queries
    (a query with several positives is encoded once)."""
    positions = work.groupby("query_id", sort=False).indices  # query_id -> row positions
    text = queries.set_index("query_id")["query"]
    products = work["product_id"].to_numpy(dtype=object)
    qids = list(positions)
    scores = np.full(len(work), np.nan)
    for start in range(0, len(qids), batch_size):
        chunk = qids[start : start + batch_size]
        cands = [products[positions[q]].tolist() for q in chunk]
        result = retriever.score_candidates(text.loc[chunk].tolist(), cands)
        scores[np.concatenate([positions[q] for q in chunk])] = np.concatenate(result).astype(float)
    return pd.Series(scores, index=work.index)


def _candidates(retriever: ScoringRetriever, queries: pd.DataFrame, k: int, batch_size: int) -> pd.DataFrame:
    """Long table (query_id, rank, cand, score) of each query's dense top-k, padding removed."""
    parts = []
    for start in range(0, len(queries), batch_size):
        chunk = queries.iloc[start : start + batch_size]
        res = retriever.search(chunk["query"].tolist(), k)
        width = res.ids.shape[1]
        parts.append(
            pd.DataFrame(
                {
                    "query_id": np.repeat(chunk["query_id"].to_numpy(), width),
                    "rank": np.tile(np.arange(width), len(chunk)),
                    "cand": res.ids.reshape(-1).astype(str),
                    "score": res.scores.reshape(-1).astype(float),
                }
            )
        )
    long = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["query_id", "rank", "cand", "score"])
    )
    return long[long["cand"] != NO_ID]


def _excluded(work: pd.DataFrame, judgments: Judgments | None, config: MiningConfig) -> dict[str, set[str]]:
    """``query_id<SEP>product_id`` keys of rules 2 and 3."""
    positives = set(work["query_id"] + _SEP + work["product_id"])
    judged: set[str] = set()
    if judgments is not None:
        j = judgments.df
        j = j[j["grade"] >= excluded_min_grade(judgments.scheme, config.exclude_top_grades)]
        judged = set(j["query_id"].astype(str) + _SEP + j["product_id"].astype(str))
    return {"other_positive": positives, "judged_top_grade": judged}


def _filter(
    pairs: pd.DataFrame, cands: pd.DataFrame, bad: dict[str, set[str]], config: MiningConfig
) -> pd.DataFrame:
    """Every (pair, candidate) with the first rule that drops it in ``reason`` (None: kept)."""
    long = pairs[["_pair", "query_id", "product_id", "_pos_score"]].merge(cands, on="query_id", how="inner")
    # object dtype: pandas hashes it against the sets quickly, unlike the Arrow-string path
    keys = (long["query_id"] + _SEP + long["cand"]).astype(object)
    pos = long["_pos_score"].to_numpy()
    # r x positive for a positive score; for a negative one the same margin below it, so the rule
    # still means "within (1 - r) of the positive" whatever the sign of the similarity.
    r = config.max_relative_score
    threshold = np.full_like(pos, np.inf) if r is None else pos - (1.0 - r) * np.abs(pos)
    rules = [
        (long["cand"] == long["product_id"]).to_numpy(),
        keys.isin(bad["other_positive"]).to_numpy(),
        keys.isin(bad["judged_top_grade"]).to_numpy(),
        long["score"].to_numpy() > threshold,
    ]
    code = np.zeros(len(long), dtype=np.int64)
    for i, hit in enumerate(rules, start=1):
        code[(code == 0) & hit] = i
    reason = np.array([None, *REASONS], dtype=object)[code]
    return long.assign(reason=reason)
