"""The per-seed steps of the synthetic-pairs pipeline, each keeping the provenance of every pair.

METHOD.md part B, steps 3-5: filter the rewrites (reward / rewriting relevance, top-n per seed), retrieve
products for each kept rewrite with a strong offline retriever (BM25 + the strongest dense model, fused
by reciprocal rank), take the union of a seed's candidates, score every (ORIGINAL query, product) pair
with the business AND the general semantic judge, keep what both accept, cap per seed, deduplicate.
One function per step: :func:`score_rewrites` (rewards of rewriter rows), :func:`select_rewrites`,
:meth:`OfflineRetriever.retrieve`, :func:`union_per_seed`, :func:`judge_candidates`, :func:`cap_per_seed`,
:func:`dedup_pairs`; :mod:`shopsearch.synthesis.pipeline` runs them chunk by chunk, resumably.

Provenance of a pair (columns of :data:`PAIR_SCHEMA`): the seed (id, text = ``query``, type), the rewrite
that retrieved the product best and its rewards, the retrieval source (``bm25`` / ``dense`` / ``both``:
which component lists of that rewrite held the product), its rank in the fused list and in each
component list, how many kept rewrites of the seed retrieved it, and both judges' scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, Retriever, SearchResult
from shopsearch.retrieval.fusion import reciprocal_rank_fusion
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.judges.base import RelevanceJudge, score_unique
from shopsearch.synthesis.query_types import normalise
from shopsearch.synthesis.rewards import RewardModels, RewardWeights, score_candidates

REWARD_COLUMNS: tuple[str, ...] = (
    "reward", "relevance", "intent_similarity", "negation_lost", "goodrate", "product_language",
    "diversity", "novelty", "format_penalty",
)
PAIR_SCHEMA = pa.schema([
    ("query", pa.string()),  # the ORIGINAL seed query: what the retriever is trained on (METHOD.md B.6)
    ("product_id", pa.string()),
    ("seed_query_id", pa.string()),
    ("query_type", pa.string()),
    ("rewrite", pa.string()),
    ("candidate_id", pa.int32()),
    *[(c, pa.float64()) for c in REWARD_COLUMNS],
    ("source", pa.string()),
    ("rank", pa.int32()),
    ("bm25_rank", pa.int32()),  # null: not in that component's list for this rewrite
    ("dense_rank", pa.int32()),
    ("n_rewrites", pa.int32()),
    ("business_score", pa.float64()),
    ("semantic_score", pa.float64()),
    ("business_accept", pa.bool_()),
    ("semantic_accept", pa.bool_()),
    ("chunk", pa.int32()),
])
PAIR_COLUMNS: tuple[str, ...] = tuple(PAIR_SCHEMA.names)
REWRITE_COLUMNS: tuple[str, ...] = ("seed_query_id", "seed_query", "candidates")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SelectionSettings(_Strict):
    """Which rewrites are searched (METHOD.md part B, step 3: filter rewrites by rewriting relevance).

    A candidate is kept when it is non-empty, its reward >= ``min_reward`` (None: no reward cut), its
    relevance reward >= ``min_relevance`` (intent similarity minus the negation penalty), and, with
    ``drop_lost_negations``, it keeps every negation of the seed ("sofa without wood legs" ->
    "wood leg sofa" is dropped whatever its other rewards); then the ``top_n`` best by reward per seed.
    """

    min_reward: float | None = None
    min_relevance: float | None = 0.3
    drop_lost_negations: bool = True
    top_n: int | None = Field(3, ge=1)


class RetrievalSettings(_Strict):
    """The offline retriever: BM25 and/or a dense model, each searched to ``depth``, fused by RRF.

    ``dense_model`` is any sentence-transformers directory (None: the bundled all-MiniLM-L6-v2); being
    offline it may be larger and slower than the online model (METHOD.md part B, step 4). ``per_rewrite_k``
    fused hits of each kept rewrite join the seed's candidate union.
    """

    bm25: bool = True
    dense: bool = True
    dense_model: str | None = None
    dense_batch_size: int = Field(64, ge=1)
    depth: int = Field(100, ge=1)
    rrf_k: int = Field(60, ge=0)
    per_rewrite_k: int = Field(30, ge=1)


class OfflineRetriever:
    """BM25 + dense retrieval fused by reciprocal rank, every hit labelled with its source and ranks.

    Also a plain :class:`~shopsearch.retrieval.base.Retriever` (``search``), so the rewards' goodrate is
    measured with the same retriever the pipeline mines with.
    """

    name = "offline-hybrid"

    def __init__(self, bm25: Retriever | None, dense: Retriever | None, *, depth: int = 100, rrf_k: int = 60) -> None:
        if bm25 is None and dense is None:
            raise SynthesisError("the offline retriever needs BM25, a dense retriever, or both")
        self.components: dict[str, Retriever] = {
            name: r for name, r in (("bm25", bm25), ("dense", dense)) if r is not None
        }
        self.depth = depth
        self.rrf_k = rrf_k

    def describe(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name, r in self.components.items():
            encoder = getattr(r, "encoder", None)
            parts[name] = encoder.describe() if encoder is not None and hasattr(encoder, "describe") else r.name
        return {"components": parts, "fusion": "rrf", "rrf_k": self.rrf_k, "depth": self.depth}

    def _results(self, queries: Sequence[str], k: int) -> tuple[SearchResult, dict[str, SearchResult]]:
        depth = max(self.depth, k)
        parts = {name: r.search(list(queries), depth) for name, r in self.components.items()}
        return reciprocal_rank_fusion(list(parts.values()), k, self.rrf_k), parts

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        return self._results(queries, k)[0]

    def retrieve(self, queries: Sequence[str], k: int) -> pd.DataFrame:
        """Long format, one row per hit: ``row`` (query index), product_id, ``rank`` (1-based, fused),
        ``source`` and ``bm25_rank`` / ``dense_rank`` (1-based within ``depth``, NA when absent)."""
        columns = ["row", "product_id", "rank", "source", "bm25_rank", "dense_rank"]
        if not len(queries):
            return pd.DataFrame(columns=columns)
        fused, parts = self._results(queries, k)
        rows, cols = np.nonzero(fused.ids != NO_ID)
        hits = pd.DataFrame({"row": rows, "product_id": fused.ids[rows, cols].astype(str), "rank": cols + 1})
        for name in ("bm25", "dense"):
            rank = pd.Series(pd.NA, index=hits.index, dtype="Int32")
            if name in parts:
                res = parts[name]
                r, c = np.nonzero(res.ids != NO_ID)
                table = pd.DataFrame({"row": r, "product_id": res.ids[r, c].astype(str), f"{name}_rank": c + 1})
                table = table.drop_duplicates(["row", "product_id"])
                rank = hits.merge(table, on=["row", "product_id"], how="left")[f"{name}_rank"].astype("Int32")
            hits[f"{name}_rank"] = rank.to_numpy()
        in_bm25, in_dense = hits["bm25_rank"].notna(), hits["dense_rank"].notna()
        hits["source"] = np.where(in_bm25 & in_dense, "both", np.where(in_bm25, "bm25", "dense"))
        return hits[columns]


def build_offline_retriever(
    product_ids: Sequence[str] | np.ndarray,
    texts: Sequence[str],
    settings: RetrievalSettings | None = None,
    *,
    encoder: Any = None,
    show_progress: bool = False,
) -> OfflineRetriever:
    """The offline retriever over a catalogue (ids aligned with rendered texts). ``encoder`` (a
    :class:`~shopsearch.retrieval.encoder.SentenceEncoder`) is used instead of loading ``dense_model``,
    so the semantic judge and the retriever can share one loaded model."""
    from shopsearch.retrieval.bm25 import BM25Retriever
    from shopsearch.retrieval.dense import DenseRetriever
    from shopsearch.retrieval.encoder import SentenceEncoder

    s = settings or RetrievalSettings()
    bm25 = BM25Retriever(product_ids, list(texts)) if s.bm25 else None
    dense = None
    if s.dense:
        enc = encoder if encoder is not None else SentenceEncoder(s.dense_model, batch_size=s.dense_batch_size)
        dense = DenseRetriever.build(enc, product_ids, list(texts), show_progress=show_progress)
    return OfflineRetriever(bm25, dense, depth=s.depth, rrf_k=s.rrf_k)


def check_rewrites(frame: pd.DataFrame) -> None:
    """A rewriter frame has the columns the pipeline reads, and lists of candidates; else a SynthesisError."""
    missing = [c for c in REWRITE_COLUMNS if c not in frame.columns]
    if missing:
        raise SynthesisError(f"rewrites need columns {list(REWRITE_COLUMNS)}; missing {missing} "
                             f"(found {list(frame.columns)}): pass the output of rewrite_seeds")
    bad = [i for i, c in enumerate(frame["candidates"]) if not hasattr(c, "__len__") or isinstance(c, str)]
    if bad:
        raise SynthesisError(f"rewrites row {bad[0]} (seed {frame['seed_query_id'].iloc[bad[0]]!r}): field "
                             "'candidates' must be a list of rewrite strings")


def rewrite_types(frame: pd.DataFrame) -> pd.Series:
    """The seeds' query types (``plain`` where missing)."""
    if "query_type" not in frame.columns:
        return pd.Series("plain", index=frame.index)
    return frame["query_type"].fillna("plain").astype(str)


def score_rewrites(
    rewrites: pd.DataFrame,
    models: RewardModels,
    *,
    weights: RewardWeights | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """Per-candidate rewards (:func:`~shopsearch.synthesis.rewards.score_candidates`) of rewriter rows,
    keyed by ``seed_query_id`` and ``candidate_id`` (the index in the row's ``candidates``)."""
    check_rewrites(rewrites)
    if rewrites.empty:
        return pd.DataFrame(columns=["seed_query_id", "query_type", "seed_query", "candidate_id", "rewrite", *REWARD_COLUMNS])
    penalty = rewrites["format_penalty"].tolist() if "format_penalty" in rewrites.columns else None
    ok = rewrites["format_ok"].astype(bool).tolist() if "format_ok" in rewrites.columns else None
    frame = score_candidates(
        rewrites["seed_query"].astype(str).tolist(), [list(c) for c in rewrites["candidates"]], models,
        format_ok=ok, format_penalty=penalty, weights=weights, k=k,
    )
    ids = rewrites["seed_query_id"].astype(str).to_numpy()
    types = rewrite_types(rewrites).to_numpy()
    frame.insert(0, "seed_query_id", ids[frame["seed_id"].to_numpy()])
    frame.insert(1, "query_type", types[frame["seed_id"].to_numpy()])
    return frame[["seed_query_id", "query_type", "seed_query", "candidate_id", "rewrite", *REWARD_COLUMNS]]


def select_rewrites(rewards: pd.DataFrame, settings: SelectionSettings) -> pd.DataFrame:
    """The kept candidates of a rewards frame (one row per candidate, see :class:`SelectionSettings`),
    ordered by seed (first appearance), then reward (best first), then candidate order."""
    needed = {"seed_query_id", "candidate_id", "rewrite", "reward"}
    missing = sorted(needed - set(rewards.columns))
    if missing:
        raise SynthesisError(f"the rewards frame lacks column(s) {missing}; make it with score_rewrites(...)")
    keep = rewards["rewrite"].fillna("").astype(str).str.strip().str.len() > 0
    if settings.min_reward is not None:
        keep &= rewards["reward"] >= settings.min_reward
    if settings.min_relevance is not None and "relevance" in rewards.columns:
        keep &= rewards["relevance"] >= settings.min_relevance
    if settings.drop_lost_negations and "negation_lost" in rewards.columns:
        keep &= ~(rewards["negation_lost"] > 0)
    kept = rewards[keep].copy()
    seed_order = {sid: i for i, sid in enumerate(dict.fromkeys(rewards["seed_query_id"]))}
    kept["_seed"] = kept["seed_query_id"].map(seed_order)
    kept = kept.sort_values(["_seed", "reward", "candidate_id"], ascending=[True, False, True], kind="stable")
    if settings.top_n is not None:
        kept = kept.groupby("_seed", sort=False).head(settings.top_n)
    return kept.drop(columns="_seed").reset_index(drop=True)


def union_per_seed(kept: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, product) over all kept rewrites of the seed.

    ``hits.row`` indexes ``kept``. The provenance kept is that of the rewrite that ranked the product
    best (ties: higher reward, then earlier candidate); ``n_rewrites`` counts the rewrites that found it.
    """
    if hits.empty:
        return pd.DataFrame(columns=[c for c in PAIR_COLUMNS if c not in ("business_score", "semantic_score",
                                                                          "business_accept", "semantic_accept", "chunk")])
    joined = kept.reset_index(drop=True).iloc[hits["row"].to_numpy()].reset_index(drop=True)
    joined = pd.concat([joined, hits.drop(columns="row").reset_index(drop=True)], axis=1)
    joined["_order"] = np.arange(len(joined))
    key = ["seed_query_id", "product_id"]
    counts = joined.groupby(key, sort=False)["candidate_id"].nunique().rename("n_rewrites")
    best = joined.sort_values(["rank", "reward", "candidate_id", "_order"], ascending=[True, False, True, True],
                              kind="stable").drop_duplicates(key)
    best = best.merge(counts.reset_index(), on=key, how="left")
    # back to a stable order: seed order of `kept`, then the fused rank
    seed_order = {sid: i for i, sid in enumerate(dict.fromkeys(kept["seed_query_id"]))}
    best["_seed"] = best["seed_query_id"].map(seed_order)
    best = best.sort_values(["_seed", "rank", "_order"], kind="stable").drop(columns=["_seed", "_order"])
    return best.reset_index(drop=True)


def judge_candidates(
    pairs: pd.DataFrame,
    business: RelevanceJudge,
    semantic: RelevanceJudge,
    product_texts: Mapping[str, str],
) -> pd.DataFrame:
    """Both judges' scores and verdicts on (ORIGINAL query, product text), each distinct pair scored once.

    The seed query, never the rewrite, is judged (METHOD.md part B, step 5): a pair is training data
    for the query shoppers type, so it must be relevant to that query.
    """
    out = pairs.copy()
    if out.empty:
        for col, dtype in (("business_score", float), ("semantic_score", float),
                           ("business_accept", bool), ("semantic_accept", bool)):
            out[col] = pd.Series(dtype=dtype)
        return out
    missing = sorted(set(out["product_id"]) - set(product_texts))
    if missing:
        raise SynthesisError(f"{len(missing)} retrieved products have no text (e.g. {missing[:3]}): build the "
                             "product texts from the catalogue the retriever indexes")
    queries = out["query"].astype(str).tolist()
    texts = [product_texts[p] for p in out["product_id"]]
    for name, judge in (("business", business), ("semantic", semantic)):
        try:
            scores = score_unique(judge, queries, texts)
        except ShopsearchError:
            raise
        except Exception as exc:  # a judge's own failure: say which judge and on how many pairs
            raise SynthesisError(f"the {name} judge {judge.name!r} failed on {len(queries)} pairs: {exc}") from exc
        # compare the judge's own float32 scores, as its accepts() does, before widening for storage
        out[f"{name}_accept"] = scores >= judge.threshold
        out[f"{name}_score"] = scores.astype(np.float64)
    return out


def cap_per_seed(pairs: pd.DataFrame, cap: int | None) -> pd.DataFrame:
    """At most ``cap`` pairs per seed: the highest business score first, then semantic score, then
    fused rank (the classifier trained on the shop's labels is the more precise of the two)."""
    if cap is None or pairs.empty:
        return pairs.reset_index(drop=True)
    seed_order = {sid: i for i, sid in enumerate(dict.fromkeys(pairs["seed_query_id"]))}
    ranked = pairs.assign(_seed=pairs["seed_query_id"].map(seed_order), _order=np.arange(len(pairs)))
    ranked = ranked.sort_values(["_seed", "business_score", "semantic_score", "rank", "_order"],
                                ascending=[True, False, False, True, True], kind="stable")
    return ranked.groupby("_seed", sort=False).head(cap).drop(columns=["_seed", "_order"]).reset_index(drop=True)


def dedup_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (normalised ORIGINAL query text, product): seeds with the same text (from different
    sources or chunks) would otherwise weight the training data towards them. The first row is kept."""
    if pairs.empty:
        return pairs.reset_index(drop=True)
    key = pairs["query"].astype(str).map(normalise) + "\x00" + pairs["product_id"].astype(str)
    return pairs[~key.duplicated()].reset_index(drop=True)


def to_table(frame: pd.DataFrame) -> pa.Table:
    """The pairs frame as an Arrow table with :data:`PAIR_SCHEMA` (columns in schema order)."""
    data = {}
    for field in PAIR_SCHEMA:
        col = frame[field.name] if field.name in frame.columns else pd.Series([None] * len(frame), dtype=object)
        values = col.astype(object).where(col.notna(), None).tolist()
        data[field.name] = pa.array(values, type=field.type)
    return pa.table(data, schema=PAIR_SCHEMA)
