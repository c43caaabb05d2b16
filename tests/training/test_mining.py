"""Hard-negative mining: each drop rule, filling up to n, stats; a real MiniLM run on a tiny catalogue."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.schema import ESCI, HOME_DEPOT, Judgments
from shopsearch.retrieval.base import NO_ID, NO_SCORE, SearchResult
from shopsearch.training.mining import MiningConfig, fill_missing_negatives, mine_hard_negatives


class FakeRetriever:
    """Scores from a table {query: {product: score}}; search ranks them, padding like FAISS."""

    def __init__(self, table: dict[str, dict[str, float]]) -> None:
        self.table = table
        self.product_ids = np.array(sorted({p for row in table.values() for p in row}), dtype=object)
        self.searches: list[int] = []

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        self.searches.append(k)
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        scores = np.full((len(queries), k), NO_SCORE, dtype=np.float32)
        for i, q in enumerate(queries):
            ranked = sorted(self.table[q].items(), key=lambda kv: -kv[1])[:k]
            for j, (p, s) in enumerate(ranked):
                ids[i, j], scores[i, j] = p, s
        return SearchResult(ids, scores)

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        return [
            np.array([self.table[q][p] for p in cands], dtype=np.float32)
            for q, cands in zip(queries, candidates, strict=True)
        ]


def pairs_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query_id", "query", "product_id"])


def test_each_rule_drops_what_it_should():
    table = {
        "drill": {
            "pos": 0.80,
            "dup": 0.80 * 0.96,  # 0.96 x positive: too close -> dropped
            "exact": 0.70,  # judged E for q1 -> dropped
            "subst": 0.69,  # judged S -> dropped
            "compl": 0.68,  # judged C -> a fine negative
            "other_pos": 0.67,  # another positive of q1 -> dropped
            "n1": 0.80 * 0.94,  # 0.94 x positive: kept
            "n2": 0.50,
            "n3": 0.40,
        }
    }
    pairs = pairs_frame([("q1", "drill", "pos"), ("q1", "drill", "other_pos")])
    judg = Judgments(
        pd.DataFrame({"query_id": ["q1"] * 3, "product_id": ["exact", "subst", "compl"], "grade": [3, 2, 1]}),
        ESCI,
    )
    out, stats = mine_hard_negatives(pairs, FakeRetriever(table), judg, MiningConfig(top_k=20, n_negatives=3))
    first = out.iloc[0]
    assert [first["negative_1"], first["negative_2"], first["negative_3"]] == [
        "n1",
        "compl",
        "n2",
    ]  # hardest first
    for _, row in out.iterrows():
        negs = {row[f"negative_{i}"] for i in (1, 2, 3)}
        assert row["product_id"] not in negs and not negs & {"pos", "other_pos", "exact", "subst"}
    assert "dup" not in set(out[["negative_1", "negative_2", "negative_3"]].to_numpy().ravel())
    d = stats["dropped"]
    assert d["positive_itself"] == 2 and d["other_positive"] == 2 and d["judged_top_grade"] == 4
    assert d["above_relative_score"] >= 1 and stats["excluded_min_grade"] == 2
    # the second pair's positive scores 0.67: everything above 0.6365 is too close, two remain
    assert out.iloc[1][["negative_1", "negative_2", "negative_3"]].tolist() == ["n2", "n3", None]
    assert stats["mean_negatives_kept"] == 2.5 and stats["rows_short"] == 1 and stats["refilled_pairs"] == 1
    assert 0 < stats["mean_negative_to_positive_score"] <= 0.95


def test_without_the_relative_score_rule_the_hardest_unjudged_products_are_negatives():
    table = {"drill": {"pos": 0.80, "above": 0.85, "dup": 0.80 * 0.96, "judged": 0.70, "far": 0.10}}
    judg = Judgments(pd.DataFrame({"query_id": ["q1"], "product_id": ["judged"], "grade": [3]}), ESCI)
    pairs = pairs_frame([("q1", "drill", "pos")])
    out, stats = mine_hard_negatives(
        pairs, FakeRetriever(table), judg, MiningConfig(top_k=10, n_negatives=3, max_relative_score=None)
    )
    assert out.iloc[0][["negative_1", "negative_2", "negative_3"]].tolist() == ["above", "dup", "far"]
    assert stats["dropped"]["above_relative_score"] == 0 and stats["dropped"]["judged_top_grade"] == 1
    kept, _ = mine_hard_negatives(pairs, FakeRetriever(table), judg, MiningConfig(top_k=10, n_negatives=3))
    assert kept.iloc[0][["negative_1", "negative_2", "negative_3"]].tolist() == ["far", None, None]
    with pytest.raises(ValueError, match="max_relative_score"):
        MiningConfig(max_relative_score=0.0)


def test_mean_rating_excludes_grades_six_and_five():
    table = {"tile": {"pos": 0.9, "g6": 0.6, "g5": 0.59, "g4": 0.58, "g0": 0.57}}
    judg = Judgments(
        pd.DataFrame({"query_id": ["q"] * 4, "product_id": ["g6", "g5", "g4", "g0"], "grade": [6, 5, 4, 0]}),
        HOME_DEPOT,
    )
    out, stats = mine_hard_negatives(
        pairs_frame([("q", "tile", "pos")]), FakeRetriever(table), judg, MiningConfig(n_negatives=2)
    )
    assert out[["negative_1", "negative_2"]].iloc[0].tolist() == ["g4", "g0"]
    assert stats["excluded_min_grade"] == 5


def test_fills_from_further_down_then_counts_shortfall():
    scores = {"pos": 1.0} | {f"near{i}": 0.99 for i in range(5)} | {"far1": 0.3, "far2": 0.2}
    retriever = FakeRetriever({"q": scores})
    cfg = MiningConfig(top_k=4, n_negatives=2, refill_top_k=16)
    out, stats = mine_hard_negatives(pairs_frame([("q1", "q", "pos")]), retriever, None, cfg)
    assert out[["negative_1", "negative_2"]].iloc[0].tolist() == ["far1", "far2"]
    assert retriever.searches == [4, 16] and stats["refilled_pairs"] == 1 and stats["rows_short"] == 0
    # without refill the pair stays short: slots are None and counted
    out, stats = mine_hard_negatives(pairs_frame([("q1", "q", "pos")]), FakeRetriever({"q": scores}), None,
                                     MiningConfig(top_k=4, n_negatives=3, refill_top_k=0))  # fmt: skip
    assert out[["negative_1", "negative_2", "negative_3"]].iloc[0].tolist() == [None, None, None]
    assert (
        stats["rows_short"] == 1 and stats["rows_without_negatives"] == 1 and stats["negatives_missing"] == 3
    )
    filled, n = fill_missing_negatives(out, 3, ["pos", "far1", "far2", "x1", "x2", "x3", "x4"], seed=1)
    row = filled[["negative_1", "negative_2", "negative_3"]].iloc[0].tolist()
    assert n == 3 and "pos" not in row and len(set(row)) == 3


def test_fill_missing_negatives_avoids_judged_products_and_is_seeded():
    pairs = pairs_frame([("q1", "q", "p0"), ("q2", "r", "p1")]).assign(negative_1=["p5", None], negative_2=None)
    judged = Judgments(pd.DataFrame({"query_id": ["q2", "q2"], "product_id": ["p2", "p3"], "grade": [0, 1]}), HOME_DEPOT)
    ids = [f"p{i}" for i in range(8)]
    a, n = fill_missing_negatives(pairs, 2, ids, judged, seed=3)
    b, _ = fill_missing_negatives(pairs, 2, ids, judged, seed=3)
    assert a.equals(b) and n == 3 and a.loc[0, "negative_1"] == "p5"
    assert a.loc[0, "negative_2"] not in {"p0", "p5"}
    assert not {a.loc[1, "negative_1"], a.loc[1, "negative_2"]} & {"p1", "p2", "p3"}
    assert a.loc[1, "negative_1"] != a.loc[1, "negative_2"]


def test_random_sampling_is_seeded_and_unindexed_positives_counted():
    table = {"q": {"pos": 1.0} | {f"n{i}": 0.5 - i / 100 for i in range(10)}}
    pairs = pairs_frame([("q1", "q", "pos"), ("q1", "q", "ghost")])  # ghost is not in the index
    cfg = MiningConfig(n_negatives=3, sample="random", seed=5)
    a, stats = mine_hard_negatives(pairs, FakeRetriever(table), None, cfg)
    b, _ = mine_hard_negatives(pairs, FakeRetriever(table), None, cfg)
    assert a.equals(b) and stats["positive_not_indexed"] == 1
    assert a.iloc[1][["negative_1", "negative_2", "negative_3"]].isna().all()
    picked = a.iloc[0][["negative_1", "negative_2", "negative_3"]].tolist()
    assert picked == sorted(picked, key=lambda p: -table["q"][p])  # still hardest first
    with pytest.raises(ValueError):
        MiningConfig(sample="bottom")  # type: ignore[arg-type]


def test_real_minilm_on_a_tiny_catalogue():
    from shopsearch.retrieval.dense import DenseRetriever
    from shopsearch.retrieval.encoder import SentenceEncoder

    titles = {
        "d1": "Bosch 18V cordless drill driver", "d2": "DeWalt 20V cordless drill", "d3": "Makita cordless drill kit",
        "s1": "Circular saw 7-1/4 in.", "s2": "Japanese pull saw", "h1": "Claw hammer 16 oz",
        "p1": "Interior wall paint white", "p2": "Paint roller cover", "g1": "Garden hose 50 ft",
        "m1": "Electric lawn mower",
    }  # fmt: skip
    retriever = DenseRetriever.build(
        SentenceEncoder(), list(titles), list(titles.values()), show_progress=False
    )
    pairs = pairs_frame([("q1", "cordless drill", "d1"), ("q2", "hand saw", "s2")])
    judg = Judgments(pd.DataFrame({"query_id": ["q1"], "product_id": ["d2"], "grade": [2]}), ESCI)
    out, stats = mine_hard_negatives(
        pairs, retriever, judg, MiningConfig(top_k=8, n_negatives=2, batch_size=1)
    )
    pos = retriever.score_candidates(["cordless drill", "hand saw"], [["d1"], ["s2"]])
    for i, row in out.iterrows():
        negs = [row["negative_1"], row["negative_2"]]
        assert all(negs) and row["product_id"] not in negs
        neg_scores = retriever.score_candidates([row["query"]], [negs])[0]
        assert (neg_scores <= 0.95 * pos[i][0] + 1e-6).all()
    assert "d2" not in out.iloc[0][["negative_1", "negative_2"]].tolist()
    assert stats["dropped"]["positive_itself"] >= 1


def test_stage1_negatives_split_by_query_between_bm25_and_the_model(esci_shop, minilm_eval, one_thread):
    """``stage1.bm25_negative_share``: a seeded share of the queries is mined with BM25, the rest with
    the model; each row's negatives are exactly what its own miner gives, in the pairs' order."""
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.dev_eval import ModelEncoder
    from shopsearch.training.pairs import pairs_from_judgments
    from shopsearch.training.stage_data import _stage1_negatives

    shop, texts = esci_shop
    pairs = pairs_from_judgments(shop, product_texts=texts).sample(frac=1.0, random_state=0)  # any index order
    encoder = ModelEncoder(minilm_eval)

    def mine(share: float) -> tuple[pd.DataFrame, dict]:
        config = TrainConfig.model_validate({"stage1": {"hard_negatives": 2, "bm25_negative_share": share}})
        return _stage1_negatives(pairs, shop, config, texts, encoder)

    model, model_stats = mine(0.0)
    lexical, lexical_stats = mine(1.0)
    mixed, mixed_stats = mine(0.5)
    assert "queries" in model_stats and "bm25" not in model_stats  # the default keeps its manifest shape
    assert set(lexical_stats) == {"bm25_negative_share", "bm25"}
    n_queries = pairs["query_id"].nunique()
    assert mixed_stats["model"]["queries"] + mixed_stats["bm25"]["queries"] == n_queries
    assert 0.2 * n_queries < mixed_stats["bm25"]["queries"] < 0.8 * n_queries
    assert lexical_stats["bm25"]["mean_negative_to_positive_score"] <= 0.95  # the relative rule, on BM25 scores

    for frame in (model, lexical, mixed):
        pd.testing.assert_frame_equal(frame[pairs.columns], pairs)
    cols = ["negative_1", "negative_2"]
    assert not model[cols].equals(lexical[cols])  # the two miners disagree somewhere
    only = {"model": 0, "bm25": 0}
    for qid, rows in mixed.groupby("query_id"):
        as_model = rows[cols].fillna("").equals(model.loc[rows.index, cols].fillna(""))
        as_bm25 = rows[cols].fillna("").equals(lexical.loc[rows.index, cols].fillna(""))
        assert as_model or as_bm25, qid  # never a blend within a query
        if as_model != as_bm25:
            only["model" if as_model else "bm25"] += 1
    assert 0 < only["model"] <= mixed_stats["model"]["queries"]
    assert 0 < only["bm25"] <= mixed_stats["bm25"]["queries"]
