"""Training rows of each stage, built from a dataset with the data-side modules.

Stage 1: judged positives (+ behaviour-log and extra pairs), hard negatives mined with the model
as it stands, rows ``anchor, positive, negative_1..n``. Stage 2: graded groups per query, rows
``query, doc_1..doc_G, label`` (with ``stage2.distill_weight``, the label also carries the
teacher's scores: :mod:`~shopsearch.training.teacher`). Both come with the no-duplicates sampler's
keys and statistics for the training manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shopsearch.data.schema import Dataset
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.training.config import TrainConfig
from shopsearch.training.dev_eval import ModelEncoder
from shopsearch.training.groups import (
    MEAN_RATING_4_LEVELS,
    GroupConfig,
    build_groups,
    groups_to_columns,
    pairs_to_columns,
)
from shopsearch.training.lexical_prior import LexicalPrior, prior_labels
from shopsearch.training.mining import MiningConfig, fill_missing_negatives, mine_hard_negatives
from shopsearch.training.pairs import (
    PairConfig,
    merge_pairs,
    normalize_query,
    pairs_from_judgments,
    synthetic_query_id,
)
from shopsearch.training.pseudo_queries import PseudoQueryConfig, pseudo_query_pairs
from shopsearch.training.sampler import RowKeys, group_keys, pair_keys
from shopsearch.training.teacher import CACHE_FILE, add_teacher_candidates, group_teacher_scores
from shopsearch.training.typos import QueryTypoConfig, add_query_typos


def stage1_data(
    train_set: Dataset, config: TrainConfig, product_text: Mapping[str, str], encoder: ModelEncoder
) -> tuple[Any, list[RowKeys], dict[str, Any], LexicalPrior | None]:
    """Stage-1 rows, sampler keys, statistics, and the logit prior the loss needs (``stage1.bm25_prior``;
    None when off): with a prior the rows carry a ``label`` column of indices into it."""
    s1 = config.stage1
    pairs = pairs_from_judgments(
        train_set,
        PairConfig(
            positive_min_grade=s1.positive_min_grade,
            substitutes_as_positives=s1.substitutes_as_positives,
            max_pairs_per_query=s1.max_pairs_per_query,
            seed=config.seed,
        ),
        product_text,
    )
    stats: dict[str, Any] = {"judgment_pairs": dict(pairs.attrs.get("stats", {}))}
    frames = [pairs]
    n_pseudo = round(s1.pseudo_query_ratio * len(pairs))
    if n_pseudo > 0:
        pseudo, stats["pseudo_queries"] = pseudo_query_pairs(
            pairs, product_text, train_set.catalog.ids, PseudoQueryConfig(n_pseudo, seed=config.seed)
        )
        frames.append(pseudo)
    if config.events:
        from shopsearch.training.logs import LogPairConfig, pairs_from_events, read_events

        for path in config.events:
            events, report = read_events(path)
            frames.append(pairs_from_events(events, LogPairConfig()))
            stats.setdefault("events", {})[str(path)] = {"rows": len(events), "bad_rows": report.counts()}
    if config.extra_pairs:
        for path in config.extra_pairs:
            extra = read_pair_file(path)
            extra = extra[extra["product_id"].isin(set(product_text))]
            frames.append(
                extra.assign(
                    query_id=extra["query"].map(lambda q: synthetic_query_id(normalize_query(q))),
                    source="extra",
                    grade=np.nan,
                    weight=config.extra_pairs_weight,
                )[["query_id", "query", "product_id", "source", "grade", "weight"]]
            )
    if len(frames) > 1:
        pairs = merge_pairs(*frames)
        stats["merged"] = dict(pairs.attrs.get("stats", {}))
    n = s1.hard_negatives
    if n > 0:
        pairs, mining = _stage1_negatives(pairs, train_set, config, product_text, encoder)
        pairs, filled = fill_missing_negatives(
            pairs, n, train_set.catalog.ids, train_set.judgments, seed=config.seed
        )
        stats["mining"] = {**mining, "negatives_filled_random": filled}
    if s1.query_typo_rate > 0:  # after mining, so negatives are mined for the query as typed
        pairs, stats["query_typos"] = add_query_typos(pairs, QueryTypoConfig(rate=s1.query_typo_rate, seed=config.seed))
    stats["rows"] = len(pairs)
    columns = pairs_to_columns(pairs, product_text, n)
    prior = None
    if s1.bm25_prior > 0:
        columns, prior, stats["lexical_prior"] = _with_lexical_prior(columns, pairs, n, train_set, product_text, s1.bm25_prior)
    return columns, pair_keys(pairs), stats, prior


def _lexical_prior(
    query_texts: pd.Series, train_set: Dataset, product_text: Mapping[str, str], weight: float
) -> tuple[LexicalPrior, np.ndarray, dict[str, int], dict[str, Any]]:
    """The prior over the distinct queries of ``query_texts``, each row's query index into it, the
    catalogue row of each product id, and the statistics both stages record."""
    queries = pd.Index(query_texts.astype(str).unique())
    prior = LexicalPrior(_catalogue_bm25(train_set, product_text), queries.tolist(), weight)
    row_of = {str(p): i for i, p in enumerate(train_set.catalog.ids)}
    stats = {"weight": weight, "queries": len(queries), "queries_without_bm25_match": int((prior.query_max == 0).sum())}
    return prior, queries.get_indexer(query_texts.astype(str)), row_of, stats


def _with_lexical_prior(
    columns: Any, pairs: pd.DataFrame, n: int, train_set: Dataset, product_text: Mapping[str, str], weight: float
) -> tuple[Any, LexicalPrior, dict[str, Any]]:
    """The rows' ``label`` column of indices (query, then each product column's catalogue row) and
    the prior they index."""
    prior, query_index, row_of, stats = _lexical_prior(pairs["query"], train_set, product_text, weight)
    products = ["product_id", *(f"negative_{i}" for i in range(1, n + 1))]
    rows = np.stack([pairs[c].astype(str).map(row_of).to_numpy(dtype=np.int64) for c in products], axis=1)
    positive = prior(torch.as_tensor(query_index[:2000]), torch.as_tensor(rows[:2000, 0])).diagonal()
    stats["mean_positive_prior_first_2000"] = float(positive.mean()) if len(positive) else None
    return columns.add_column("label", prior_labels(query_index.tolist(), rows.tolist())), prior, stats


def _stage1_negatives(
    pairs: pd.DataFrame,
    train_set: Dataset,
    config: TrainConfig,
    product_text: Mapping[str, str],
    encoder: ModelEncoder,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Mined negatives of the stage-1 pairs: a seeded ``bm25_negative_share`` of the queries mined
    with BM25, the rest with the model as it stands (same rules for both, each on its own scores).

    BM25's near misses are the lexical false positives that the hybrid inherits from its BM25 half;
    a dense model trained to push them down complements BM25 instead of repeating it (CLEAR, Gao et
    al. 2021, trains its residual dense model on BM25-retrieved negatives for that reason).
    """
    s1 = config.stage1
    mining = MiningConfig(
        top_k=s1.mining_top_k,
        n_negatives=s1.hard_negatives,
        max_relative_score=s1.mining_max_relative_score,
        exclude_top_grades=s1.mining_exclude_top_grades,
        seed=config.seed,
    )
    qids = pairs["query_id"].astype(str)
    unique = qids.unique()
    lexical = unique[np.random.default_rng(config.seed).random(len(unique)) < s1.bm25_negative_share]
    on_bm25 = qids.isin(set(lexical)).to_numpy()
    parts, stats = [], {}
    for source, rows in (("model", ~on_bm25), ("bm25", on_bm25)):
        if not rows.any():
            continue
        retriever = (
            _catalogue_retriever(train_set, product_text, encoder)
            if source == "model"
            else _catalogue_bm25(train_set, product_text)
        )
        mined, mined_stats = mine_hard_negatives(pairs[rows], retriever, train_set.judgments, mining)
        parts.append(mined.set_axis(np.flatnonzero(rows)))  # positions: the pairs' order comes back below
        stats[source] = mined_stats
    out = pd.concat(parts).sort_index().set_axis(pairs.index)
    if set(stats) == {"model"}:  # the default: the manifest keeps its one-miner shape
        return out, stats["model"]
    return out, {"bm25_negative_share": s1.bm25_negative_share, **stats}


def _catalogue_retriever(
    train_set: Dataset, product_text: Mapping[str, str], encoder: ModelEncoder
) -> DenseRetriever:
    """The whole catalogue encoded by the model as it stands, searchable for mining."""
    vectors = encoder.encode([product_text[p] for p in train_set.catalog.ids], show_progress=True)
    return DenseRetriever(encoder, train_set.catalog.ids, vectors, query_cache_size=0)  # type: ignore[arg-type]


def _catalogue_bm25(train_set: Dataset, product_text: Mapping[str, str]) -> BM25Retriever:
    """The whole catalogue in a BM25 index over the texts the encoder sees."""
    ids = train_set.catalog.ids
    return BM25Retriever(ids, [product_text[str(p)] for p in ids])


def _group_hard_negatives(
    train_set: Dataset, config: TrainConfig, product_text: Mapping[str, str], retriever: DenseRetriever
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Unjudged products the stage-1 model ranks high for each judged query, mined against the
    query's best-graded product (same rules as stage 1). They join the groups at the bottom level:
    full-corpus ranking is lost to exactly these products, which no judged group contains."""
    s2 = config.stage2
    best = (
        train_set.judgments.df.sort_values(["query_id", "grade"], ascending=[True, False], kind="stable")
        .drop_duplicates("query_id")[["query_id", "product_id"]]
        .merge(train_set.queries.df[["query_id", "text"]].rename(columns={"text": "query"}), on="query_id")
    )
    best = best[best["product_id"].isin(set(product_text)) & (best["query"].fillna("").str.strip() != "")]
    mined, stats = mine_hard_negatives(
        best.reset_index(drop=True),
        retriever,
        train_set.judgments,
        MiningConfig(
            top_k=s2.mining_top_k,
            n_negatives=s2.hard_negatives,
            max_relative_score=s2.mining_max_relative_score,
            # every judged product keeps its own grade in the group: none may be mined
            exclude_top_grades=train_set.scheme.max_grade + 1,
            refill_top_k=0,
            seed=config.seed,
        ),
    )
    return mined, stats


def stage2_data(
    train_set: Dataset,
    config: TrainConfig,
    product_text: Mapping[str, str],
    encoder: ModelEncoder | None = None,
    stage_dir: Path | None = None,
) -> tuple[Any, list[RowKeys], dict[str, Any], LexicalPrior | None]:
    """Stage-2 group rows, sampler keys, statistics, and the logit prior of ``stage2.bm25_prior`` (None when
    off). Each label is the G grades; with distillation then the G teacher scores (kept in
    ``stage_dir/teacher_scores.parquet``); with a prior then the query index and the G catalogue rows."""
    s2 = config.stage2
    hard_negatives, mining, retriever = None, None, None
    if s2.hard_negatives > 0 or s2.distill_weight > 0:
        if encoder is None:
            raise ValueError("stage-2 hard negatives and distillation need the current model (encoder)")
        retriever = _catalogue_retriever(train_set, product_text, encoder)
    if s2.hard_negatives > 0:
        assert retriever is not None
        hard_negatives, mining = _group_hard_negatives(train_set, config, product_text, retriever)
    scheme = train_set.scheme
    # Home Depot's 7 mean-rating grades are collapsed to 4 levels (groups.MEAN_RATING_4_LEVELS):
    # adjacent crowd means (2.33 vs 2.67) are too close to order reliably.
    collapse = MEAN_RATING_4_LEVELS if scheme.name == "mean-rating" else None
    top = collapse[scheme.relevant_min] if collapse else scheme.relevant_min
    groups, stats = build_groups(
        train_set,
        GroupConfig(
            max_per_grade=s2.max_per_grade,
            min_grades=s2.min_grades,
            max_group_size=s2.max_group_size,
            seed=config.seed,
            collapse=collapse,
            min_top_grade=top,
        ),
        hard_negatives=hard_negatives,
    )
    groups = groups[groups["product_ids"].map(lambda ids: all(p in product_text for p in ids))].reset_index(drop=True)
    stats = {**stats, "rows": len(groups), "collapsed_grades": bool(collapse)}
    if mining is not None:
        stats["mining"] = mining
    keys = group_keys(groups)  # distillation-only products are nobody's in-batch negatives
    teacher = None
    if s2.distill_weight > 0:
        assert retriever is not None
        if s2.teacher_candidates:
            groups, stats["teacher_candidates"] = add_teacher_candidates(
                groups, retriever, s2.teacher_candidates, s2.mining_top_k
            )
        teacher, stats["teacher"] = group_teacher_scores(
            s2.teacher, groups["query"].astype(str).tolist(), groups["product_ids"].tolist(),
            hybrid=[_catalogue_bm25(train_set, product_text), retriever] if s2.teacher != "cross_encoder" else (),
            model=s2.teacher_model, catalog=train_set.catalog,
            cache=stage_dir / CACHE_FILE if stage_dir is not None else None,
        )
    width = s2.max_group_size + (s2.teacher_candidates if teacher is not None else 0)
    columns = groups_to_columns(groups, product_text, size=width, teacher=teacher)
    prior = None
    if s2.bm25_prior > 0:
        columns, prior, stats["lexical_prior"] = _groups_with_lexical_prior(
            columns, groups, train_set, product_text, s2.bm25_prior, width
        )
    return columns, keys, stats, prior


def _groups_with_lexical_prior(
    columns: Any, groups: pd.DataFrame, train_set: Dataset, product_text: Mapping[str, str], weight: float, width: int
) -> tuple[Any, LexicalPrior, dict[str, Any]]:
    """Each group's label extended by its query's index and its products' catalogue rows (padding: row 0,
    never read: the loss drops padded slots by their grade), and the prior they index."""
    prior, query_index, row_of, stats = _lexical_prior(groups["query"], train_set, product_text, weight)
    labels = [
        [*grades, int(q), *(row_of[str(p)] for p in pids), *[0] * (width - len(pids))]
        for grades, q, pids in zip(columns["label"], query_index, groups["product_ids"], strict=True)
    ]
    return columns.remove_columns("label").add_column("label", labels), prior, stats


def read_pair_file(path: str | Path) -> pd.DataFrame:
    """Extra training pairs (``query``, ``product_id``), e.g. synthetic ones, from CSV/Parquet/JSONL."""
    path = Path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix in (".jsonl", ".ndjson"):
        frame = pd.read_json(path, lines=True)
    else:
        frame = pd.read_csv(path)
    missing = {"query", "product_id"} - set(frame.columns)
    if missing:
        from shopsearch.data.errors import DataError

        raise DataError(f"missing column(s) {sorted(missing)}; found {list(frame.columns)}", file=path)
    frame["product_id"] = frame["product_id"].astype(str)
    return frame
